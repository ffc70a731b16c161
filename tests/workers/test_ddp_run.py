"""A run that asks for two devices, through a real worker: torchrun starts two gloo ranks on the CPU
and the run's events come from rank 0 alone."""

import pytest

from lab.runs.actions import create_run
from lab.runs.models import Artifact, Status
from tests.builders import losses, run_status, seqs
from tests.conftest import wait_for
from tests.training.helpers import tiny_config

pytestmark = pytest.mark.e2e


def test_a_two_device_pretrain_run_trains_on_two_ranks_and_rank_0_reports(cast, sample_data, tokenizer_path, processes,
                                                                          tmp_path):
    processes.worker("w1")  # a CPU-only worker: it offers its cores as gloo ranks (lab/fleet/admission.py)
    corpus = tmp_path / "shakespeare-part.txt"  # a part: rank 0 tokenizes it on the worker, the others wait
    corpus.write_text(sample_data["corpora/tinyshakespeare.txt"].read_text()[:60_000])
    config = tiny_config(corpus, tokenizer_path, "", max_steps=6, eval_every=0)
    run = create_run(cast.team, "pretrain", "gpu", config, {}, cast.alice, devices=2)

    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=180, what=f"run {run.pk} to end")

    assert run.status == Status.SUCCEEDED, run.error
    # One writer: every seq once, every logged step once, one summary, one checkpoint.
    assert seqs(run) == list(range(1, run.last_seq + 1))
    assert [step for step, _ in losses(run)] == [2, 4, 6]
    summaries = [e.data["summary"] for e in run.events.filter(type="status", data__has_key="summary")
                 if "devices" in e.data["summary"]]
    assert [s["devices"] for s in summaries] == [2]
    assert run.events.filter(type="checkpoint").count() == 1
    assert run.artifacts.get(kind=Artifact.Kind.CHECKPOINT).metadata["step"] == 6
