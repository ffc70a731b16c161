"""A reward cell on real workers: the cell trains a reward model on real hh-rlhf pairs (python -m training
reward, under the worker), the model is registered as a reward model, the cell shows its held-out
histogram, and the score box is answered by an inference worker with the rewards the training
library's scorer gives."""

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact, Status
from tests.builders import brought_model, run_status
from tests.conftest import wait_for
from tests.training.fixtures import PREFERENCE

pytestmark = pytest.mark.e2e


def test_a_reward_cell_trains_on_a_worker_and_its_model_scores_typed_answers(cast, processes, data_dir, base_model, tmp_path):
    from training.reward import load_reward_scorer

    base = register_model_folder(cast.team, brought_model(base_model, data_dir, "base"), "chat base", cast.alice)
    pairs = tmp_path / "hh-24.jsonl"
    pairs.write_text("\n".join(PREFERENCE.read_text(encoding="utf-8").splitlines()[:24]) + "\n", encoding="utf-8")
    dataset = create_dataset_from_path(cast.team, cast.alice, pairs, name="hh pairs")
    notebook = Notebook.objects.create(team=cast.team, title="taste", created_by=cast.alice)
    model_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": base.pk})
    reward = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.REWARD, config={
        "model_cell": model_cell.pk, "dataset": dataset.pk, "max_length": 48, "batch_size": 4, "max_steps": 6,
        "warmup_steps": 1, "lr": 1e-3, "eval_every": 0, "log_every": 2, "checkpoint_every_steps": 0,
        "val_fraction": 0.25,
    })
    processes.worker("w1")
    processes.worker("inference", queues=INFERENCE_QUEUE, pool="solo")

    run = start_cell_run(reward, cast.alice)
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=240, what=f"run {run.pk}")
    assert run.status == Status.SUCCEEDED, f"{run.error_field}: {run.error}"
    model = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    held_out = model.metadata["held_out"]
    assert model.metadata["task"] == "reward" and held_out["pairs"] == len(held_out["chosen"]) == 6
    assert {"accuracy", "val_accuracy"} <= set(run.latest_metrics)

    page = Client()
    page.force_login(cast.alice)
    html = page.get(f"/notebooks/{notebook.pk}/").content.decode()
    assert 'data-role="reward-histogram"' in html and f"/models/{model.pk}/score/" in html
    prompt, responses = "What is the capital of France?", ["Paris.", "I would rather not say."]
    answer = page.post(f"/models/{model.pk}/score/", {"prompt": prompt, "responses": responses}, content_type="application/json")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["model"] == model.pk and [r["response"] for r in body["results"]] == responses
    expected = load_reward_scorer(model.absolute_path).score([prompt, prompt], responses)
    assert [r["reward"] for r in body["results"]] == pytest.approx(expected, abs=1e-5)
    assert expected[0] != expected[1]
