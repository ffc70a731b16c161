"""A fine-tuning run survives the loss of its worker: the control worker marks it lost and requeues
it, and another worker resumes it from its last `checkpoint-N/` (trl's Trainer state, optimizer,
scheduler, RNG and data position), in the same run and event sequence."""

import json
from pathlib import Path

import pytest

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run, Status
from tests.builders import brought_model, run_status, seqs
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

MAX_STEPS = 24
CHECKPOINT_EVERY = 4


def _metrics_by_attempt(run: Run, lost_seq: int) -> tuple[dict[int, dict], dict[int, dict]]:
    """{step: values} of the loss metrics written before the loss of the worker, and after it."""
    before: dict[int, dict] = {}
    after: dict[int, dict] = {}
    for event in run.events.filter(type="metric").order_by("seq"):
        values = event.data["values"]
        if "loss" not in values:
            continue
        side = before if event.seq < lost_seq else after
        assert event.data["step"] not in side, f"step {event.data['step']} logged twice by one attempt"
        side[event.data["step"]] = values
    return before, after


def test_a_killed_workers_sft_run_is_marked_lost_and_resumes_from_its_checkpoint(
    cast, sample_data, processes, data_dir, base_model
):
    brought = register_model_folder(cast.team, brought_model(base_model, data_dir, "chat-base"), "chat base",
                                    cast.alice)
    sft_data = create_dataset_from_path(cast.team, cast.alice, sample_data["sft/dolly-2k.messages.jsonl"], name="dolly")
    notebook = Notebook.objects.create(team=cast.team, title="chat", created_by=cast.alice)
    model = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": brought.pk})
    sft = Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.SFT, config={
        "model_cell": model.pk, "dataset": sft_data.pk, "method": "lora", "lora_r": 8, "max_length": 128,
        "batch_size": 8, "max_steps": MAX_STEPS, "warmup_steps": 2, "lr": 5e-3, "eval_every": 0, "log_every": 1,
        "val_fraction": 0.02, "sample_prompts": ["Name a colour."], "sample_tokens": 4,
        "checkpoint_every_steps": CHECKPOINT_EVERY,
    })
    doomed = processes.worker("doomed")
    processes.worker("control", queues="control", beat=True, pool="solo")

    run = start_cell_run(sft, cast.alice)
    # A first checkpoint, and a few steps past it: the work done after it is lost with the worker.
    wait_for(lambda: (r := Run.objects.get(pk=run.pk)).last_checkpoint and r.step >= CHECKPOINT_EVERY + 2,
             timeout=120, what="a first checkpoint and two steps more")
    processes.kill(doomed)  # kill -9 the whole worker: the training child dies with it (PDEATHSIG)
    run.refresh_from_db()
    checkpoint = Path(run.last_checkpoint)
    resumed_step = int(checkpoint.name.removeprefix("checkpoint-"))
    assert checkpoint.name == f"checkpoint-{resumed_step}" and resumed_step % CHECKPOINT_EVERY == 0
    assert resumed_step < MAX_STEPS, "the run ended before the worker was killed: give it more steps"

    wait_for(lambda: run.events.filter(type="status", data__status="lost").exists(), timeout=60, what="lost")
    assert run_status(run) == Status.QUEUED
    processes.worker("rescuer")
    wait_for(lambda: run_status(run) not in (Status.QUEUED, Status.RUNNING), timeout=180, what="the resumed run to end")

    assert run.status == Status.SUCCEEDED, f"{run.error_field}: {run.error}"
    assert run.restarts == 1 and run.attempt == 2
    assert run.events.filter(type="status", data__status="lost").count() == 1
    assert seqs(run) == list(range(1, run.last_seq + 1))  # one sequence across both attempts: no gap, no repeat
    # The rescuer was handed the checkpoint the database knew of, and the Trainer resumed from it.
    second_config = json.loads((Path(run.config["output_dir"]) / "attempt-2.json").read_text())
    assert second_config["resume_from"] == str(checkpoint)
    lost_seq = run.events.get(type="status", data__status="lost").seq
    started = [e.data for e in run.events.filter(type="status", data__status="running", seq__gt=lost_seq)
               if "summary" in e.data]
    assert len(started) == 1 and started[0]["step"] == resumed_step, started
    assert started[0]["summary"]["resumed_from_step"] == resumed_step

    before, after = _metrics_by_attempt(run, lost_seq)
    # The first attempt trained past the checkpoint; what it did after it died with the worker.
    assert sorted(before) == list(range(1, max(before) + 1)) and max(before) >= resumed_step
    # The curve continues from the checkpoint: no step at or before it again, none skipped, to the end.
    assert sorted(after) == list(range(resumed_step + 1, MAX_STEPS + 1)), sorted(after)
    # The steps both attempts trained (after the checkpoint, before the kill: that work died with the
    # worker) were trained again the same way: the same schedule (scheduler state restored), the same
    # batches (data position restored; the token count goes on from the checkpoint's, not from 0) and
    # the same weights and dropout draws (model, optimizer and RNG state restored), so the same loss.
    redone = sorted(set(before) & set(after))
    assert redone == list(range(resumed_step + 1, max(before) + 1))
    for step in redone:
        assert after[step]["lr"] == pytest.approx(before[step]["lr"], rel=1e-6), step
        assert after[step]["tokens"] == before[step]["tokens"], step
        assert after[step]["loss"] == pytest.approx(before[step]["loss"], rel=1e-4), step
    assert after[resumed_step + 1]["tokens"] > before[resumed_step]["tokens"]

    tuned = run.artifacts.get(kind=Artifact.Kind.CHECKPOINT)
    assert tuned.metadata["step"] == MAX_STEPS and tuned.metadata["merged"]
    assert tuned.metadata["tokens_seen"] == after[MAX_STEPS]["tokens"]
    assert list(tuned.parent_artifacts.all()) == [brought] and list(tuned.parent_datasets.all()) == [sft_data]
