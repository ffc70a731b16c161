"""A real Celery worker process runs real (tiny) training: the whole run lifecycle end to end."""

import math
import subprocess
import sys

import pytest

from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell
from lab.runs.actions import cancel_run, resume_run
from lab.runs.models import Artifact, Run, Status
from tests.builders import losses, run_status, seqs, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def _run_cell(cell: Cell, user, timeout=180) -> Run:
    run = start_cell_run(cell, user)
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=timeout, what=f"run {run.pk} to end")
    return run


def test_it_pretrains_on_a_worker_and_the_checkpoint_generates(cast, sample_data, processes):
    processes.worker("w1")
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    tokenizer_run = _run_cell(cells["tokenizer"], cast.alice)
    assert tokenizer_run.status == Status.SUCCEEDED, tokenizer_run.error
    cells["pretrain"].refresh_from_db()

    run = _run_cell(cells["pretrain"], cast.alice)

    assert run.status == Status.SUCCEEDED, run.error
    assert seqs(run) == list(range(1, run.last_seq + 1))
    curve = losses(run)
    assert curve[0][1] - curve[-1][1] > 0.5, f"loss did not fall: {curve}"
    val_losses = [e.data["values"]["val_loss"] for e in run.events.filter(type="metric", data__values__has_key="val_loss")]
    assert val_losses and val_losses[-1] < math.log(512) - 0.8, f"no better than a uniform guess: {val_losses}"
    assert run.events.filter(type="sample").exists()
    checkpoint = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    assert set(checkpoint.parent_artifacts.values_list("kind", flat=True)) == {"tokenizer"}
    assert checkpoint.parent_datasets.count() == 1
    # Loading is done in a fresh interpreter, as a user of the download would.
    script = (
        "import sys; from transformers import AutoModelForCausalLM, AutoTokenizer;"
        "p=sys.argv[1]; m=AutoModelForCausalLM.from_pretrained(p, use_safetensors=True); t=AutoTokenizer.from_pretrained(p);"
        "ids=t('ROMEO:', return_tensors='pt').input_ids;"
        "out=m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=t.pad_token_id);"
        "print(len(out[0]) - len(ids[0]), repr(t.decode(out[0])))"
    )
    result = subprocess.run([sys.executable, "-c", script, str(checkpoint.absolute_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    new_tokens, text = result.stdout.strip().split(" ", 1)
    assert int(new_tokens) > 0 and text.startswith("'ROMEO:")


def test_it_cancels_with_a_checkpoint_and_resumes_without_gaps(cast, sample_data, processes):
    processes.worker("w1")
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"],
                                 max_steps=150, checkpoint_every_steps=10, eval_every=0, sample_every=0)
    assert _run_cell(cells["tokenizer"], cast.alice).status == Status.SUCCEEDED
    cells["pretrain"].refresh_from_db()
    run = start_cell_run(cells["pretrain"], cast.alice)
    wait_for(lambda: Run.objects.get(pk=run.pk).step >= 15, timeout=180, what="training to pass step 15")

    assert cancel_run(Run.objects.get(pk=run.pk))
    wait_for(lambda: run_status(run) == Status.CANCELLED, timeout=60, what="cancelled")
    assert run.last_checkpoint and run.can_resume
    stopped_at = run.step
    assert stopped_at < 150

    assert resume_run(run)
    wait_for(lambda: run_status(run) == Status.SUCCEEDED, timeout=240, what="resumed run to finish")

    assert seqs(run) == list(range(1, run.last_seq + 1))  # contiguous: no gap, no repeat
    steps = [step for step, _ in losses(run)]
    assert steps == sorted(set(steps)), "the loss curve must continue from the checkpoint, not repeat steps"
    assert any(step > stopped_at for step in steps) and steps[-1] == 150
    assert run.attempt == 2


def test_it_marks_a_killed_workers_run_lost_and_resumes_it_once(cast, sample_data, processes):
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"],
                                 max_steps=150, checkpoint_every_steps=10, eval_every=0, sample_every=0)
    doomed = processes.worker("doomed")
    processes.worker("control", queues="control", beat=True)
    assert _run_cell(cells["tokenizer"], cast.alice).status == Status.SUCCEEDED
    cells["pretrain"].refresh_from_db()
    run = start_cell_run(cells["pretrain"], cast.alice)
    wait_for(lambda: Run.objects.get(pk=run.pk).last_checkpoint, timeout=180, what="a first checkpoint")

    processes.kill(doomed)  # kill -9 the whole worker: the training child dies with it (PDEATHSIG)
    wait_for(lambda: run.events.filter(type="status", data__status="lost").exists(), timeout=60, what="lost")
    assert run_status(run) == Status.QUEUED

    processes.worker("rescuer")
    wait_for(lambda: run_status(run) == Status.SUCCEEDED, timeout=240, what="the resumed run to finish")
    assert run.restarts == 1
    assert run.events.filter(type="status", data__status="lost").count() == 1
    assert seqs(run) == list(range(1, run.last_seq + 1))
    assert max(step for step, _ in losses(run)) == 150
