"""A training process killed alone, as the out-of-memory killer does, with real worker and training
processes. (A worker told to stop: tests/workers/test_stack_faults.py.)"""

import os
import signal
import time
from pathlib import Path

import pytest

from lab.notebooks.actions import start_cell_run
from lab.runs.models import Run, Status
from tests.builders import run_status, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def training_pid(run: Run) -> int:
    """The pid of the run's training process (`... --config <run folder>/attempt-N.json`)."""
    config = f"{run.config['output_dir']}/attempt-"
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "training" in argv and any(arg.startswith(config) for arg in argv):
            return int(entry.name)
    raise AssertionError(f"no training process for run {run.pk}")


def pretrain(cast, sample_data, **config) -> Run:
    corpus = sample_data["corpora/tinyshakespeare.txt"]
    cells = shakespeare_notebook(cast.team, cast.alice, corpus, eval_every=0, sample_every=0,
                                 **config)
    tokenizer = start_cell_run(cells["tokenizer"], cast.alice)
    wait_for(lambda: run_status(tokenizer) == Status.SUCCEEDED, timeout=120, what="the tokenizer")
    cells["pretrain"].refresh_from_db()
    return start_cell_run(cells["pretrain"], cast.alice)


def test_a_training_process_killed_alone_is_explained_not_retried(cast, sample_data, processes):
    processes.worker("w1")
    run = pretrain(cast, sample_data, max_steps=2000, checkpoint_every_steps=10)
    wait_for(lambda: Run.objects.get(pk=run.pk).last_checkpoint, timeout=120, what="a checkpoint")

    os.kill(training_pid(run), signal.SIGKILL)  # what the out-of-memory killer does

    wait_for(lambda: run_status(run) == Status.FAILED, timeout=30, what="the run to fail")
    assert "killed (SIGKILL)" in run.error and "out-of-memory killer" in run.error
    size, unit = run.error.split("peaked at ")[1].split(" ")[:2]
    assert float(size) > 50 and unit in ("MiB", "GiB"), run.error  # torch alone takes more
    assert f"Resume continues from {Path(run.last_checkpoint).name}" in run.error
    assert "not retried by itself" in run.error
    assert run.can_resume
    time.sleep(3)  # never retried by itself
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.attempt == 1 and run.restarts == 0
    last = run.events.order_by("-seq").first()
    assert last.data["status"] == "failed" and "out-of-memory" in last.data["message"]
