"""`kill -9` of a worker with an admitted queue behind it (issue 16): two real gpu-queue workers on CPU,
more runs than they can hold, each with its own priority; the worker holding the first run is killed
with its whole process group. The control worker finds the run's lease expired and requeues it; the
other worker resumes it from its checkpoint, once, and the runs start in the queue page's order.

The two long runs never end by themselves (the test cancels them), so the kill lands mid-run however
fast the machine trains."""

import json
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client

from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell
from lab.runs.actions import cancel_run
from lab.runs.models import Run, Status
from tests.builders import run_status, seqs, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e

CHECKPOINT_EVERY = 5
ENDLESS = 100_000  # max_steps of a run the test ends


def _queue_page_order(client: Client) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-run="(\d+)"', client.get("/fleet/queue/").content.decode())]


def _autogroup_nice(pid: int) -> int:
    """The nice value of the process's session (Linux autogroup scheduling; 0 where the kernel has none)."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])  # "/autogroup-42 nice 0"
    except OSError:
        return 0


def _attempt_notes(run: Run) -> list[str]:
    return [e.data["message"] for e in run.events.filter(type="log") if e.data["message"].startswith("attempt ")]


def test_a_killed_workers_run_resumes_once_on_the_other_worker_and_the_queue_keeps_its_order(cast, sample_data, processes):
    # The lost-lease path in seconds: a lease of 3 s renewed every second, swept every second.
    processes.env.update(LAB_LEASE_SECONDS="3", LAB_HEARTBEAT_SECONDS="1", LAB_REAP_SECONDS="1")
    workers = {"gpu1": processes.worker("gpu1")}
    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"], eval_every=0,
                                 sample_every=0, log_every=1, checkpoint_every_steps=CHECKPOINT_EVERY)
    tokenizer = start_cell_run(cells["tokenizer"], cast.alice)
    workers["gpu2"] = processes.worker("gpu2")
    wait_for(lambda: run_status(tokenizer) == Status.SUCCEEDED, timeout=60, what="the tokenizer run")

    pretrain = cells["pretrain"]

    def cell(position: int, **config) -> Cell:
        return Cell.objects.create(notebook=pretrain.notebook, position=position, kind=pretrain.kind,
                                   config={**pretrain.config, **config})

    # Three runs for two workers, made oldest first with the lowest priority: the queue's order is the
    # priorities', the reverse of their age.
    with transaction.atomic():  # admission sees all three at once, when this commits
        third = start_cell_run(cell(10, max_steps=3, warmup_steps=1), cast.alice)
        second = start_cell_run(cell(11, max_steps=ENDLESS), cast.alice)
        first = start_cell_run(cell(12, max_steps=ENDLESS), cast.alice)
        for run, priority in ((first, 3), (second, 2), (third, 1)):
            Run.objects.filter(pk=run.pk).update(priority=priority)
    wait_for(lambda: (r := Run.objects.get(pk=first.pk)).last_checkpoint and r.step >= CHECKPOINT_EVERY + 2
             and run_status(second) == Status.RUNNING, timeout=60, what="the first run's checkpoint, the second running")
    assert run_status(third) == Status.QUEUED

    first.refresh_from_db()
    doomed = first.worker.partition("@")[0]
    survivor = ({"gpu1", "gpu2"} - {doomed}).pop()
    assert Run.objects.get(pk=second.pk).worker.startswith(f"{survivor}@")
    processes.kill(workers[doomed])  # kill -9 of its process group: the training process dies with it (PDEATHSIG)
    # The reaper's worker starts while the lease runs out (admission needed none so far: the runs were
    # sent when they were made, as the workers came free).
    processes.worker("control", queues="control", beat=True, pool="solo")
    first.refresh_from_db()
    checkpoint = Path(first.last_checkpoint)
    resumed_step = int(checkpoint.name.removeprefix("checkpoint-"))
    assert resumed_step % CHECKPOINT_EVERY == 0 and resumed_step > 0

    wait_for(lambda: run_status(first) == Status.QUEUED, timeout=20, what="the reaper to requeue the first run")
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("root", is_staff=True))
    page = _queue_page_order(staff)
    # The survivor holds the second run; the requeued first run comes before the third, as its priority says.
    assert page == [second.pk, first.pk, third.pk], page

    assert cancel_run(Run.objects.get(pk=second.pk))  # the survivor comes free: the queue behind the dead worker goes, in order
    lost_seq = first.events.get(type="status", data__status="lost").seq
    wait_for(lambda: first.events.filter(type="metric", seq__gt=lost_seq, data__step__gte=resumed_step + 3).exists(),
             timeout=60, what="the first run to resume and train three steps past its checkpoint")
    assert run_status(third) == Status.QUEUED
    assert cancel_run(Run.objects.get(pk=first.pk))
    wait_for(lambda: run_status(third) not in (Status.QUEUED, Status.RUNNING), timeout=60, what="the third run")
    runs = {run.pk: run for run in Run.objects.filter(pk__in=page)}
    assert [runs[pk].status for pk in page] == [Status.CANCELLED, Status.CANCELLED, Status.SUCCEEDED]
    queued = [pk for pk in page if pk != second.pk]
    assert sorted(queued, key=lambda pk: runs[pk].started_at) == queued  # started in the page's order

    # Resumed exactly once, on the other worker, from its checkpoint; every other run ran once.
    first = runs[first.pk]
    assert (first.attempt, first.restarts) == (2, 1) and first.worker.startswith(f"{survivor}@")
    assert [(runs[pk].attempt, runs[pk].restarts) for pk in (second.pk, third.pk)] == [(1, 0), (1, 0)]
    assert first.events.filter(type="status", data__status="lost").count() == 1
    notes = _attempt_notes(first)
    assert len(notes) == 2 and notes[0].startswith(f"attempt 1 on {doomed}@"), notes
    assert notes[1].startswith(f"attempt 2 on {survivor}@") and notes[1].endswith(f"resuming from {checkpoint.name}")
    assert sum("resuming from" in e.data.get("message", "") for e in first.events.all()) == 1
    attempt_2 = json.loads((Path(first.config["output_dir"]) / "attempt-2.json").read_text())
    assert attempt_2["resume_from"] == str(checkpoint)
    assert seqs(first) == list(range(1, first.last_seq + 1))  # one event sequence across both attempts
    steps_after = [e.data["step"] for e in first.events.filter(type="metric", seq__gt=lost_seq).order_by("seq")
                   if "loss" in e.data["values"]]
    assert steps_after == list(range(resumed_step + 1, first.step + 1))  # the curve goes on from the checkpoint
    # Its supervisor yielded the CPU to each run's training process and took it back after: the
    # survivor's main process, which forks the pool process that claims the next run, is at nice 0.
    assert _autogroup_nice(workers[survivor].pid) == 0
    for proc in workers.values():
        said = proc.log_path.read_bytes()
        assert b"not claimed" not in said  # no copy of a run's message was delivered twice
        # Each run's pool process ended without breaking its worker's connection to the database.
        assert b"heartbeat failed" not in said and b"admission failed" not in said
