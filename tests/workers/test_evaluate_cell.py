"""An Evaluate cell on a real worker: two checkpoints of one pretrain run scored on MMLU questions; the
evaluation is registered with both checkpoints as parents, the notebook shows the table, the report page
pages the failures, and each model's page lists the evaluation."""

import json
from html import unescape

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Status
from tests.builders import brought_model, run_status
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_two_checkpoints_are_evaluated_side_by_side_on_a_worker(cast, sample_data, processes, data_dir, small_base_run):
    early = register_model_folder(cast.team, brought_model(small_base_run / "checkpoint-30", data_dir, "early"), "early", cast.alice)
    late = register_model_folder(cast.team, brought_model(small_base_run / "checkpoint-60", data_dir, "late"), "late", cast.alice)
    mmlu = create_dataset_from_path(cast.team, cast.alice, sample_data["eval/mmlu-test-500.jsonl"], name="mmlu")
    notebook = Notebook.objects.create(team=cast.team, title="which is better", created_by=cast.alice)
    first = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": early.pk})
    second = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.MODEL, config={"model": late.pk})
    evaluate = Cell.objects.create(notebook=notebook, position=2, kind=Cell.Kind.EVALUATE, config={
        "model_cells": [first.pk, second.pk], "dataset": mmlu.pk, "max_examples": 12, "batch_size": 8})
    processes.worker("w1")

    run = start_cell_run(evaluate, cast.alice)
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=240, what=f"run {run.pk}")
    assert run.status == Status.SUCCEEDED, f"{run.error_field}: {run.error}"
    evaluation = run.artifacts.get(kind=Artifact.Kind.EVALUATION)
    assert set(evaluation.parent_artifacts.all()) == {early, late} and list(evaluation.parent_datasets.all()) == [mmlu]
    assert [m["artifact"] for m in evaluation.metadata["models"]] == [early.pk, late.pk]
    assert evaluation.metadata["task"] == "multiple_choice" and evaluation.metadata["examples"] == 12
    rows = [json.loads(line) for line in evaluation.absolute_path.read_text().splitlines()]
    assert len(rows) == 24 and {r["model"] for r in rows} == {"early", "late"}
    progress = [e.data["values"]["progress"] for e in run.events.filter(type="metric").order_by("seq")]
    assert progress[-1] == 1.0 and progress == sorted(progress)

    page = Client()
    page.force_login(cast.alice)
    notebook_html = unescape(page.get(f"/notebooks/{notebook.pk}/").content.decode())
    assert 'data-model="early"' in notebook_html and 'data-model="late"' in notebook_html
    assert f"/evaluations/{evaluation.pk}/" in notebook_html
    wrong = sum(not r["correct"] for r in rows if r["model"] == "late")
    report = unescape(page.get(f"/evaluations/{evaluation.pk}/", {"model": "late"}).content.decode())
    assert f"{wrong} examples wrong" in report
    for model in (early, late):
        assert f"/evaluations/{evaluation.pk}/" in page.get(f"/models/{model.pk}/").content.decode()
