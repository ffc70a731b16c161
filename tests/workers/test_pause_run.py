"""Pause on a real Celery worker (issue 16): a pretrain run pauses mid-run at a checkpoint and lets go of
its worker, which takes the next queued run at once; resumed, the run continues from the checkpoint's
step to the end. One worker for the whole story: starting one costs seconds."""

import pytest

from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell
from lab.runs.actions import pause_run, resume_run
from lab.runs.models import HELD_BY_WORKER, Run, Status
from tests.builders import losses, run_status, seqs, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_paused_run_frees_its_worker_for_the_next_and_resumes_from_its_checkpoint(cast, sample_data, processes):
    processes.worker("w1")
    cells = shakespeare_notebook(
        cast.team,
        cast.alice,
        sample_data["corpora/tinyshakespeare.txt"],
        max_steps=40,
        checkpoint_every_steps=5,
        eval_every=0,
        sample_every=0,
        log_every=1,
    )
    tokenizer = start_cell_run(cells["tokenizer"], cast.alice)
    wait_for(lambda: run_status(tokenizer) == Status.SUCCEEDED, timeout=60, what="the tokenizer")
    cells["pretrain"].refresh_from_db()
    run = start_cell_run(cells["pretrain"], cast.alice)
    wait_for(lambda: Run.objects.get(pk=run.pk).step >= 6, timeout=60, what="training to pass its first checkpoint")
    again = Cell.objects.create(notebook=cells["notebook"], position=9, kind=Cell.Kind.TOKENIZER, config=cells["tokenizer"].config)
    next_run = start_cell_run(again, cast.alice)  # waits: the only worker is busy

    assert pause_run(Run.objects.get(pk=run.pk), cast.alice)
    wait_for(lambda: run_status(run) == Status.PAUSED, timeout=30, what="paused")
    checkpoint_step = run.step
    assert run.last_checkpoint.endswith(f"checkpoint-{checkpoint_step}") and checkpoint_step < 40
    assert (run.output_dir / f"checkpoint-{checkpoint_step}" / "model.safetensors").is_file()
    assert (run.lease_token, run.lease_expires_at) == ("", None)
    paused = run.events.filter(type="status", data__status=Status.PAUSED).get()
    assert paused.data["message"] == f"paused at checkpoint-{checkpoint_step} (step {checkpoint_step}) by alice"
    wait_for(lambda: run_status(next_run) == Status.SUCCEEDED, timeout=30, what="the next run on the freed worker")
    assert next_run.worker == run.worker
    assert not Run.objects.filter(status__in=HELD_BY_WORKER).exists()

    assert resume_run(run, cast.alice)
    wait_for(lambda: run_status(run) == Status.SUCCEEDED, timeout=60, what="the resumed run to finish")
    assert seqs(run) == list(range(1, run.last_seq + 1))  # one stream, no gap, no repeat
    after_resume = [e.data["step"] for e in run.events.filter(type="metric", seq__gt=paused.seq)]
    assert after_resume and min(after_resume) == checkpoint_step + 1 and after_resume[-1] == 40
    steps = [step for step, _ in losses(run)]
    assert steps == sorted(set(steps)) and run.attempt == 2
