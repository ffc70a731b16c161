"""The reward cell and the score box, in the web process: the cell shows the held-out rewards' histogram
and the box; what the stage cannot train on is refused before anything is queued; the score route
answers bad requests with the field at fault and other teams' models with a 404, never a 500."""

import json

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.hub.inference import MAX_TEXT_CHARS, MAX_TEXTS
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run
from lab.task_client import client
from tests.builders import brought_model
from tests.training.fixtures import PREFERENCE
from training.config import ConfigError

pytestmark = pytest.mark.django_db
HELD_OUT = {"pairs": 3, "accuracy": 2 / 3, "mean_margin": 0.25, "chosen": [0.5, 0.25, -0.1], "rejected": [0.1, -0.2, 0.3]}


def _reward_model(team, data_dir, name="rm", task="reward") -> Artifact:
    (data_dir / name).mkdir()
    return Artifact.objects.create(team=team, kind=Artifact.Kind.CHECKPOINT, name=name, path=name, sha256="0" * 64,
                                   metadata={"task": task, "held_out": HELD_OUT})


def _reward_cell(team, user, **config) -> Cell:
    notebook = Notebook.objects.create(team=team, title="taste", created_by=user)
    return Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.REWARD, config=config)


def _client(user) -> Client:
    page = Client()
    page.force_login(user)
    return page


def test_the_cell_shows_the_held_out_histogram_and_the_score_box(cast, data_dir):
    cell = _reward_cell(cast.team, cast.alice)
    run = Run.objects.create(team=cast.team, cell=cell, stage="reward", config={}, status="succeeded")
    model = _reward_model(cast.team, data_dir)
    model.run = run
    model.save()
    cell.current_run = run
    cell.save()

    html = _client(cast.alice).get(f"/notebooks/{cell.notebook_id}/").content.decode()
    assert 'data-role="reward-histogram"' in html and f'data-source="reward-held-out-{cell.pk}"' in html
    assert f'<script id="reward-held-out-{cell.pk}" type="application/json">' in html
    assert json.dumps(HELD_OUT["chosen"]) in html and 'data-metric="held_out_accuracy">0.667<' in html
    assert f'data-score-url="/models/{model.pk}/score/"' in html and "js/reward.js" in html


def test_the_model_page_of_a_reward_model_has_the_score_box(cast, data_dir, base_model):
    folder = brought_model(base_model, data_dir, "rm")
    model = register_model_folder(cast.team, folder, "rm", cast.alice)
    page = _client(cast.alice)
    assert 'data-role="reward-scorer"' not in page.get(f"/models/{model.pk}/").content.decode()
    model.metadata["task"] = "reward"
    model.save()
    html = page.get(f"/models/{model.pk}/").content.decode()
    assert 'data-role="reward-scorer"' in html and f"/models/{model.pk}/score/" in html and "js/reward.js" in html


def test_what_the_stage_cannot_train_on_is_refused_before_queueing(cast, data_dir, base_model, tmp_path):
    model = register_model_folder(cast.team, brought_model(base_model, data_dir, "base"), "base", cast.alice)
    notebook = Notebook.objects.create(team=cast.team, title="taste", created_by=cast.alice)
    model_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": model.pk})
    chats = tmp_path / "chats.jsonl"
    chats.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    sft = create_dataset_from_path(cast.team, cast.alice, chats, name="chats")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(PREFERENCE.read_text(encoding="utf-8").splitlines()[:8]) + "\n")
    preference = create_dataset_from_path(cast.team, cast.alice, pairs, name="pairs")

    def refused(**config) -> str:
        cell = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.REWARD, config=config)
        with pytest.raises(ConfigError) as e:
            start_cell_run(cell, cast.alice)
        return e.value.field

    assert refused(model_cell=model_cell.pk, dataset=sft.pk) == "dataset"  # an sft dataset, not pairs
    assert refused(dataset=preference.pk) == "model_cell"
    assert refused(model_cell=model_cell.pk, dataset=preference.pk, max_length=100_000) == "max_length"
    theirs = create_dataset_from_path(cast.other_team, cast.mallory, pairs, name="their pairs")
    assert refused(model_cell=model_cell.pk, dataset=theirs.pk) == "dataset"
    assert not Run.objects.exists()
    cell = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.REWARD,
                               config={"model_cell": model_cell.pk, "dataset": preference.pk, "max_length": 128})
    assert start_cell_run(cell, cast.alice).config["max_length"] == 128  # the same cell, mended, queues


@pytest.mark.parametrize(("body", "field"), [
    ("not json", "body"),
    ("[1, 2]", "body"),
    ("[" * 50_000 + "]" * 50_000, "body"),
    (json.dumps({"response": "yes"}), "prompt"),
    (json.dumps({"prompt": "  ", "response": "yes"}), "prompt"),
    (json.dumps({"prompt": "hi"}), "responses"),
    (json.dumps({"prompt": "hi", "responses": []}), "responses"),
    (json.dumps({"prompt": "hi", "responses": [1e308]}), "responses"),
    (json.dumps({"prompt": "hi", "responses": ["ok"] * (MAX_TEXTS + 1)}), "responses"),
    (json.dumps({"prompt": "hi", "response": "x" * (MAX_TEXT_CHARS + 1)}), "responses"),
    (json.dumps({"prompt": "x" * 1_000_000, "response": "yes"}), "prompt"),
])
def test_a_bad_score_request_names_its_field_before_anything_is_queued(cast, data_dir, monkeypatch, body, field):
    model = _reward_model(cast.team, data_dir)
    monkeypatch.setattr(client, "send_task", lambda *a, **k: pytest.fail("a bad request reached the queue"))
    response = _client(cast.alice).post(f"/models/{model.pk}/score/", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["field"] == field, response.content


def test_only_the_teams_reward_models_score(cast, data_dir, monkeypatch):
    monkeypatch.setattr(client, "send_task", lambda *a, **k: pytest.fail("the request reached the queue"))
    body = json.dumps({"prompt": "hi", "response": "hello"})
    ours = _reward_model(cast.team, data_dir)
    classifier = _reward_model(cast.team, data_dir, "spam", task="classification")
    gone = _reward_model(cast.team, data_dir, "gone")
    (data_dir / "gone").rmdir()
    theirs = _reward_model(cast.other_team, data_dir, "theirs")

    alice, mallory = _client(cast.alice), _client(cast.mallory)
    assert mallory.post(f"/models/{ours.pk}/score/", body, content_type="application/json").status_code == 404
    assert alice.post(f"/models/{theirs.pk}/score/", body, content_type="application/json").status_code == 404
    assert alice.post(f"/models/{classifier.pk}/score/", body, content_type="application/json").status_code == 404
    assert alice.post(f"/models/{gone.pk}/score/", body, content_type="application/json").status_code == 404
    assert alice.post(f"/models/{2**62}/score/", body, content_type="application/json").status_code == 404
    assert alice.get(f"/models/{ours.pk}/score/").status_code == 405
    assert Client().post(f"/models/{ours.pk}/score/", body, content_type="application/json").status_code == 302
