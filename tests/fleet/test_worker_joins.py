"""A real Celery worker joins the fleet when it starts, heartbeats, and leaves it when it stops."""

import signal

import pytest

from lab.fleet.models import Worker
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
