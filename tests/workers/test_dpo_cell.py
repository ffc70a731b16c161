"""A preference-tuning (dpo) cell on a real worker: a brought chat model is tuned with LoRA on real
hh-rlhf pairs, the rewards of chosen and rejected answers stream into the run, and the tuned model is
a checkpoint whose lineage is the base and the pairs. What cannot run is refused before a run exists."""

from html import unescape

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run, Status
from tests.builders import brought_model, run_status
from tests.conftest import wait_for
from tests.training.test_dpo import short_pairs
from training.config import ConfigError


def _notebook(cast, model_folder, data_dir, tmp_path, **dpo):
    brought = register_model_folder(cast.team, brought_model(model_folder, data_dir, "chat-base"), "chat base", cast.alice)
    pairs = create_dataset_from_path(cast.team, cast.alice, short_pairs(40, tmp_path), name="hh pairs")
    notebook = Notebook.objects.create(team=cast.team, title="preferences", created_by=cast.alice)
    model = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": brought.pk})
    cell = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.DPO, config={
        "model_cell": model.pk, "dataset": pairs.pk, "method": "lora", "lora_r": 4, "max_length": 128, "batch_size": 8,
        "max_steps": 6, "warmup_steps": 0, "lr": 1e-2, "eval_every": 3, "log_every": 2, "val_fraction": 0.2,
        "sample_tokens": 8, "checkpoint_every_steps": 0, "schedule": "constant", **dpo,
    })
    return brought, pairs, model, cell


@pytest.mark.e2e
def test_a_dpo_cell_tunes_a_model_on_pairs_and_streams_its_rewards(cast, processes, data_dir, base_model, tmp_path):
    brought, pairs, _, cell = _notebook(cast, base_model, data_dir, tmp_path)
    processes.worker("w1")

    run = start_cell_run(cell, cast.alice)
    assert run.stage == "dpo" and run.queue == "gpu"
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=240, what=f"run {run.pk}")
    assert run.status == Status.SUCCEEDED, f"{run.error_field}: {run.error}"
    train = [e.data["values"] for e in run.events.filter(type="metric").order_by("seq") if "loss" in e.data["values"]]
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(train[0])
    assert train[-1]["rewards/margins"] > train[0]["rewards/margins"], train
    assert run.events.filter(type="sample").exists()
    tuned = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    assert list(tuned.parent_artifacts.all()) == [brought] and list(tuned.parent_datasets.all()) == [pairs]
    assert tuned.metadata["loss_type"] == "sigmoid" and tuned.metadata["reference"] == "base with adapters disabled"

    page = Client()
    page.force_login(cast.alice)
    html = unescape(page.get(f"/notebooks/{cell.notebook.pk}/").content.decode())
    assert 'data-charts="loss,rewards,margins,speed"' in html and f"/models/{tuned.pk}/" in html
    assert "Preference-tuned checkpoint" in html


@pytest.mark.django_db
def test_what_cannot_run_is_refused_before_a_run_exists(cast, data_dir, base_model, tmp_path, sample_data):
    _, _, model, cell = _notebook(cast, base_model, data_dir, tmp_path)

    def refused(**config) -> ConfigError:
        cell.config |= config
        cell.save()
        with pytest.raises(ConfigError) as e:
            start_cell_run(cell, cast.alice)
        return e.value

    error = refused(reference_cell=model.pk)  # a LoRA policy named as its own reference
    assert error.field == "reference_cell" and "is the base model itself" in error.message
    cell.config.pop("reference_cell")
    sft = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"], name="dolly")
    error = refused(dataset=sft.pk)
    assert error.field == "dataset" and "needs a preference dataset" in error.message
    (tmp_path / "theirs").mkdir()
    theirs = create_dataset_from_path(cast.other_team, cast.mallory, short_pairs(10, tmp_path / "theirs"), name="theirs")
    error = refused(dataset=theirs.pk)
    assert error.field == "dataset" and "does not exist" in error.message
    error = refused(dataset=10**12)
    assert error.field == "dataset" and "does not exist" in error.message
    assert not Run.objects.exists()
    page = Client()
    page.force_login(cast.alice)
    html = unescape(page.get(f"/notebooks/{cell.notebook.pk}/").content.decode())  # the form, in words
    assert 'value="kto"' in html and "KTO (unpaired labels)" in html and "Beta (β)" in html
