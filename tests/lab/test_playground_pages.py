"""The playground's pages: the playground on the team's language models, its cell, sending a pair of
answers to a campaign, and a model's export (queued as a run of the export stage, its result on the
model page). Another team's model or campaign is a 404; a malformed value is a 400 naming the field."""

import json

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run
from lab.runs.outputs import register_output
from tests.builders import brought_model
from tests.feedback.builders import campaign_with_items
from tests.training.helpers import FakeReporter
from training.export_config import ExportConfig
from training.stages import STAGES

pytestmark = pytest.mark.django_db
HUGE = 10**30


@pytest.fixture
def model(cast, base_model, settings):
    return register_model_folder(cast.team, brought_model(base_model, settings.LAB_DATA_DIR, "chat"), "chat base", cast.alice)


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_opens_the_playground_on_the_teams_language_models_only(cast, model, settings, base_model):
    classifier = register_model_folder(cast.team, brought_model(base_model, settings.LAB_DATA_DIR, "clf"), "spam", cast.alice)
    classifier.metadata = {"task": "classification"}
    classifier.save()
    page = client_of(cast.carol).get(f"/models/{model.pk}/playground/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<option value="{model.pk}" selected>chat base · Alpha</option>' in html
    assert "spam" not in html
    assert 'data-socket="/ws/playground/"' in html and "js/playground.js" in html
    assert client_of(cast.alice).get("/playground/").status_code == 200
    assert client_of(cast.mallory).get(f"/models/{model.pk}/playground/").status_code == 404
    assert client_of(cast.alice).get(f"/models/{classifier.pk}/playground/").status_code == 404
    assert "No language model of your teams yet" in client_of(cast.mallory).get("/playground/").content.decode()


def test_the_playground_cell_opens_the_playground_on_its_model_cells_checkpoint(cast, model):
    notebook = Notebook.objects.create(team=cast.team, title="Chat", created_by=cast.alice)
    base = Cell.objects.create(notebook=notebook, kind=Cell.Kind.MODEL, position=0, config={"model": model.pk})
    cell = Cell.objects.create(notebook=notebook, kind=Cell.Kind.PLAYGROUND, position=1)
    client = client_of(cast.alice)
    assert client.post(f"/cells/{cell.pk}/save/", {"title": "Talk", "model_cell": base.pk}).status_code == 302
    cell.refresh_from_db()
    assert cell.config == {"model_cell": base.pk}
    html = client.get(f"/notebooks/{notebook.pk}/").content.decode()
    assert f'href="/models/{model.pk}/playground/">Open the playground on chat base</a>' in html


def test_a_pair_of_answers_goes_to_a_campaign_of_the_team(cast, model):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=0, overlap=1)
    pair = {"campaign": campaign.pk, "prompt": "Say hi", "response_a": "hi", "response_b": "hello",
            "artifact_a": model.pk, "artifact_b": model.pk}
    client = client_of(cast.carol)

    def post(body, who=client):
        return who.post("/playground/pairs/", json.dumps(body), content_type="application/json")

    sent = post(pair)
    assert sent.status_code == 201 and sent.json()["items"] == 1
    item = campaign.items.get()
    assert (item.prompt, item.response_a, item.response_b, item.model_a, item.artifact_b_id) == (
        "Say hi", "hi", "hello", "chat base", model.pk)

    assert post(pair, client_of(cast.mallory)).status_code == 404  # neither the campaign nor the models are hers
    assert post({**pair, "campaign": HUGE}).status_code == 404
    assert post({**pair, "artifact_b": HUGE}).json() == {"error": "no such model of your team", "field": "artifact_b"}
    assert post({**pair, "artifact_a": "1; drop"}).json()["field"] == "artifact_a"
    empty = post({**pair, "response_b": " "})
    assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "response_b"
    extra = post({**pair, "evil": 1})
    assert extra.status_code == 400 and extra.json()["errors"][0]["field"] == "evil"
    assert post([pair]).json()["field"] == "body"
    deep = client.post("/playground/pairs/", "[" * 10_000 + "]" * 10_000, content_type="application/json")
    assert deep.status_code == 400 and deep.json()["field"] == "body"
    assert campaign.items.count() == 1


def test_an_export_is_queued_on_a_worker_and_the_model_page_shows_its_size_and_perplexity(cast, model, sample_data):
    corpus = create_dataset_from_path(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"], name="shakespeare")
    client = client_of(cast.carol)
    page = client.get(f"/models/{model.pk}/").content.decode()
    assert f'<option value="{corpus.pk}">shakespeare</option>' in page and 'value="nf4"' in page

    started = client.post(f"/models/{model.pk}/export/", {"quantization": "int8", "eval_corpus": corpus.pk})
    run = Run.objects.get(stage="export")
    assert started.status_code == 302 and started["Location"] == f"/runs/{run.pk}/"
    assert (run.queue, run.config["quantization"], run.config["eval_path"]) == ("cpu", "int8", str(corpus.absolute_path))
    assert run.inputs["model"]["id"] == model.pk and run.inputs["eval_corpus"]["id"] == corpus.pk

    # What the worker does with it (tests/training/test_export.py runs the stage on its own).
    reporter = FakeReporter()
    STAGES["export"].run(ExportConfig.from_dict({**run.config, "eval_tokens": 512}), reporter)
    export = register_output(run, next(e for e in reporter.events if e["type"] == "artifact"))
    assert export.kind == Artifact.Kind.EXPORT and list(export.parent_artifacts.all()) == [model]

    page = client.get(f"/models/{model.pk}/").content.decode()
    ppl = export.metadata["perplexity"]
    assert f"{ppl['quantized']:.3f} <span class=\"muted\">vs {ppl['full']:.3f} at full precision, 512 tokens" in page
    assert f'href="/artifacts/{export.pk}/download/"' in page
    download = client.get(f"/artifacts/{export.pk}/download/")
    assert b"model.int8.safetensors" in b"".join(download.streaming_content)


def test_an_export_request_from_another_team_or_with_bad_values_is_refused(cast, model, sample_data):
    theirs = create_dataset_from_path(cast.other_team, cast.mallory, sample_data["corpora/tinyshakespeare.txt"], name="x")
    client = client_of(cast.alice)

    def export(**form):
        response = client.post(f"/models/{model.pk}/export/", form)
        return response.status_code, response.content.decode()

    assert client_of(cast.mallory).post(f"/models/{model.pk}/export/", {"quantization": "int8"}).status_code == 404
    assert export(quantization="int3") == (400, "quantization: must be int8 or nf4, not 'int3'")
    assert export(quantization="int8", eval_corpus="abc")[1].startswith("eval_corpus: Enter a whole number")
    assert export(quantization="int8", eval_corpus=str(HUGE))[0] == 400
    assert export(quantization="int8", eval_corpus=theirs.pk) == (400, f"eval_corpus: no text corpus {theirs.pk} in team Alpha")
    assert not Run.objects.exists()
