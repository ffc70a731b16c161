"""A real Celery worker joins the fleet when it starts, heartbeats, and leaves it when it stops; drained, it
takes nothing new until it is undrained."""

import signal
import time

import pytest
from django.contrib.auth import get_user_model

from lab.fleet.actions import set_draining
from lab.fleet.models import Worker
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell
from lab.runs.models import Run, Status
from tests.builders import run_status, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_worker_registers_when_it_starts_and_says_it_stopped_when_it_stops(processes, settings):
    proc = processes.worker("fleet1", queues="cpu,inference")
    worker = wait_for(lambda: Worker.objects.filter(hostname__startswith="fleet1@").first(), timeout=30, what="registration")
    assert worker.queues == ["cpu", "inference"] and worker.state == Worker.State.ONLINE and worker.cpu_count >= 1
    assert worker.devices or worker.nvml_error  # a GPU's readings, or why there are none
    first_beat = worker.heartbeat_at
    wait_for(lambda: Worker.objects.get(pk=worker.pk).heartbeat_at > first_beat,
             timeout=settings.LAB_WORKER_HEARTBEAT_SECONDS * 3, what="a heartbeat")

    processes.kill(proc, signal.SIGTERM)
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.OFFLINE


def test_a_drained_worker_takes_nothing_new_until_it_is_undrained(processes, cast, sample_data):
    root = get_user_model().objects.create_user("root", is_staff=True)
    processes.worker("fleet2", queues="cpu")
    worker = wait_for(lambda: Worker.objects.filter(hostname__startswith="fleet2@").first(), timeout=30, what="registration")
    drained = set_draining(worker, True, root)
    assert drained.detail == "no longer consuming from cpu"  # the worker's own answer

    run = start_cell_run(shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])["tokenizer"], cast.alice)
    time.sleep(3)
    assert run_status(run) == Status.QUEUED

    assert set_draining(worker, False, root).detail == "add consumer cpu"
    wait_for(lambda: run_status(run) == Status.SUCCEEDED, timeout=60, what=f"run {run.pk} after the undrain")


def test_with_more_runs_than_workers_they_start_in_the_queue_pages_order(processes, cast, sample_data):
    from lab.fleet.admission import plan

    tokenizer = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])["tokenizer"]
    cells = [Cell.objects.create(notebook=tokenizer.notebook, position=10 + i, kind=Cell.Kind.TOKENIZER, config=tokenizer.config)
             for i in range(3)]
    runs = [start_cell_run(cell, cast.alice) for cell in cells]
    Run.objects.filter(pk=runs[2].pk).update(priority=1)
    planned = [decision.run.pk for decision in plan()]
    assert planned == [runs[2].pk, runs[0].pk, runs[1].pk]

    processes.worker("fleet3", queues="cpu")
    wait_for(lambda: all(run_status(run) == Status.SUCCEEDED for run in runs), timeout=120, what="the three runs")
    started = list(Run.objects.filter(pk__in=planned).order_by("started_at").values_list("pk", flat=True))
    assert started == planned
