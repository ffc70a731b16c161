"""A real Celery worker in the fleet: it registers when it starts and heartbeats; drained, it takes
nothing new; undrained, it takes the waiting runs in the order the queue page shows (priority, then
age); stopped, it is offline. One worker for the whole story: starting one costs seconds."""

import signal
import time

import pytest
from django.contrib.auth import get_user_model

from lab.fleet.actions import set_draining
from lab.fleet.admission import plan
from lab.fleet.models import Worker
from lab.notebooks.actions import start_cell_run
from lab.notebooks.models import Cell
from lab.runs.models import Run, Status
from tests.builders import run_status, shakespeare_notebook
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def test_a_worker_joins_drains_takes_runs_in_the_queue_pages_order_and_leaves(processes, cast, sample_data, settings):
    root = get_user_model().objects.create_user("root", is_staff=True)
    proc = processes.worker("fleet1", queues="cpu")
    worker = wait_for(lambda: Worker.objects.filter(hostname__startswith="fleet1@").first(), timeout=30, what="registration")
    assert worker.queues == ["cpu"] and worker.state == Worker.State.ONLINE and worker.cpu_count >= 1
    assert worker.devices or worker.nvml_error  # a GPU's readings, or why there are none
    first_beat = worker.heartbeat_at
    wait_for(lambda: Worker.objects.get(pk=worker.pk).heartbeat_at > first_beat,
             timeout=settings.LAB_WORKER_HEARTBEAT_SECONDS * 3, what="a heartbeat")

    assert set_draining(worker, True, root).detail == "no longer consuming from cpu"  # the worker's own answer
    tokenizer = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])["tokenizer"]
    cells = [Cell.objects.create(notebook=tokenizer.notebook, position=10 + i, kind=Cell.Kind.TOKENIZER, config=tokenizer.config)
             for i in range(3)]
    runs = [start_cell_run(cell, cast.alice) for cell in cells]
    Run.objects.filter(pk=runs[2].pk).update(priority=1)
    planned = [decision.run.pk for decision in plan()]
    assert planned == [runs[2].pk, runs[0].pk, runs[1].pk]
    time.sleep(2)
    assert [run_status(run) for run in runs] == [Status.QUEUED] * 3
    assert Run.objects.get(pk=runs[0].pk).waiting_for == "no online worker takes the 'cpu' queue"  # a drained worker

    assert set_draining(worker, False, root).detail == "add consumer cpu"
    wait_for(lambda: all(run_status(run) == Status.SUCCEEDED for run in runs), timeout=120, what="the three runs")
    assert list(Run.objects.filter(pk__in=planned).order_by("started_at").values_list("pk", flat=True)) == planned

    processes.kill(proc, signal.SIGTERM)
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.OFFLINE
