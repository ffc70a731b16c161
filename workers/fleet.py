"""A worker registers itself when it starts and heartbeats while it lives (lab/fleet's Worker row),
with its GPUs' readings; it says it stopped when it shuts down. The admin's workers page reads
these rows; a worker whose heartbeats stop is offline (settings.LAB_WORKER_OFFLINE_SECONDS)."""

from __future__ import annotations

import logging
import os
import socket
import threading

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from lab.fleet.admission import admit_quietly
from lab.fleet.models import Worker
from workers.gpus import read_devices

log = logging.getLogger(__name__)
_stop = threading.Event()

# Held while the heartbeat thread uses the database; a fork (the prefork pool starting the process
# that claims the next run) waits for it. SQLite keeps a process's locks in memory, where a fork
# copies them: a pool process forked while a beat held the write lock believes another of its own
# connections holds it, and its claim waits out the whole busy timeout (30 s), then fails.
beat_uses_the_database = threading.Lock()
os.register_at_fork(before=beat_uses_the_database.acquire, after_in_parent=beat_uses_the_database.release,
                    after_in_child=beat_uses_the_database.release)


def register(hostname: str, queues: list[str], readings: tuple[list, str] | None = None) -> Worker:
    devices, why = readings or read_devices()
    worker, _ = Worker.objects.update_or_create(hostname=hostname, defaults={
        "host": socket.gethostname(), "queues": sorted(queues), "pid": os.getpid(), "cpu_count": os.cpu_count() or 0,
        "devices": devices, "nvml_error": why, "started_at": timezone.now(), "heartbeat_at": timezone.now(),
        "stopped_at": None,
    })
    admit_quietly()  # runs that waited for a worker of these queues
    return worker


def heartbeat(hostname: str, readings: tuple[list, str] | None = None) -> bool:
    """One beat with fresh readings; False when the row is gone (then the next start registers again)."""
    devices, why = readings or read_devices()
    return bool(Worker.objects.filter(hostname=hostname).update(
        heartbeat_at=timezone.now(), devices=devices, nvml_error=why, stopped_at=None))


def stopped(hostname: str) -> None:
    _stop.set()
    Worker.objects.filter(hostname=hostname).update(stopped_at=timezone.now())


def is_draining(hostname: str) -> bool:
    return Worker.objects.filter(hostname=hostname, draining=True).exists()


def start_heartbeats(hostname: str, queues: list[str]) -> threading.Thread:
    """Register, then beat every LAB_WORKER_HEARTBEAT_SECONDS on a daemon thread of the worker's main
    process, admitting what waits at each beat. A database or NVML failure skips a beat; it never
    stops the worker."""
    _stop.clear()

    def beat() -> None:
        registered = False
        while True:
            readings = read_devices()  # outside the lock: a slow NVML must not hold back a fork
            with beat_uses_the_database:
                try:
                    registered = heartbeat(hostname, readings) if registered else bool(register(hostname, queues, readings))
                    # Admission also runs on every beat: a run that found no free worker when it was
                    # queued goes within a beat even where no control worker sweeps (its sweep is the other net).
                    admit_quietly()
                except Exception:  # noqa: BLE001 - a missed beat is logged, the next one tries again
                    log.exception("worker %s: heartbeat failed", hostname)
                    connection.close()
                finally:
                    close_old_connections()
            if _stop.wait(settings.LAB_WORKER_HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, name="fleet-heartbeat", daemon=True)
    thread.start()
    return thread
