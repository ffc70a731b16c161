"""A dpo cell that asks for two devices, through a real worker: the cell's `devices` becomes the run's,
the worker launches the stage under torchrun (two gloo ranks on the CPU), rank 0 alone reports, and
the tuned model is registered once."""

import pytest

from lab.notebooks.actions import start_cell_run
from lab.runs.models import Artifact, Status
from tests.builders import losses, run_status, seqs
from tests.conftest import wait_for
from tests.workers.test_dpo_cell import _notebook

pytestmark = pytest.mark.e2e


def test_a_dpo_cell_on_two_devices_trains_on_two_ranks_and_rank_0_reports(cast, processes, data_dir, base_model, tmp_path):
    brought, pairs, _, cell = _notebook(cast, base_model, data_dir, tmp_path, devices=2, eval_every=0)
    processes.worker("w1")  # a CPU-only worker: it offers its cores as gloo ranks (lab/fleet/admission.py)

    run = start_cell_run(cell, cast.alice)
    assert run.devices == 2 and "devices" not in run.config
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=180, what=f"run {run.pk} to end")

    assert run.status == Status.SUCCEEDED, run.error
    assert seqs(run) == list(range(1, run.last_seq + 1))  # one writer
    assert [step for step, _ in losses(run)] == [2, 4, 6]
    summaries = [e.data["summary"] for e in run.events.filter(type="status", data__has_key="summary")
                 if "devices" in e.data["summary"]]
    assert [s["devices"] for s in summaries] == [2]
    assert run.events.filter(type="checkpoint").count() == 1
    tuned = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)  # rank 0's merged model, registered once
    assert tuned.metadata["merged"] is True and tuned.metadata["step"] == 6
    assert list(tuned.parent_artifacts.all()) == [brought] and list(tuned.parent_datasets.all()) == [pairs]
