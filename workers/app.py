"""The Celery app. Settings come from Django's settings (CELERY_* names); see lab/settings.py."""

import os
import signal
import sys

import django
from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down
from celery.worker import state
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
django.setup()
# No PostgreSQL connection pool in a worker. A prefork pool process inherits the pool of the main
# process, and Celery's Django fixup closes it there: each close tells the server to end a session
# the main process still uses, so its heartbeats failed after every run and the worker looked
# offline to admission, which then held the next run back until a beat got through. A pool process
# lives for one task, and the main process connects once a heartbeat: a pool saves them nothing.
for database in settings.DATABASES.values():
    database.get("OPTIONS", {}).pop("pool", None)

app = Celery("lab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks",)


@worker_shutting_down.connect
def _stop_runs_at_a_checkpoint(**_) -> None:
    """A warm shutdown waits for the running task, but nothing tells a run to stop: pass the word on
    to the pool process running it (its supervisor stops the training process at a checkpoint and
    hands the run back to the queue: workers/supervisor.py), or to a run in this process (solo)."""
    supervisor = sys.modules.get("workers.supervisor")  # imported here only if a run is (solo pool)
    if supervisor is not None:
        supervisor.worker_stopping()
    for request in list(state.active_requests):
        if request.name == "workers.execute_run" and request.worker_pid not in (None, os.getpid()):
            try:
                os.kill(request.worker_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@worker_ready.connect
def _join_the_fleet(sender, **_) -> None:
    """Register on the admin's workers page and heartbeat there with the GPUs' readings (workers/fleet.py)."""
    from workers.fleet import is_draining, start_heartbeats

    queues = list(app.amqp.queues.consume_from)
    try:
        if is_draining(sender.hostname):  # drained before it restarted: it stays drained
            for queue in queues:
                sender.cancel_task_queue(queue)
    except Exception:  # noqa: BLE001 - no database now: the heartbeat registers it later
        pass
    start_heartbeats(sender.hostname, queues)


@worker_shutdown.connect
def _leave_the_fleet(sender, **_) -> None:
    from workers.fleet import stopped

    try:
        stopped(sender.hostname)
    except Exception:  # noqa: BLE001 - the row goes offline by its heartbeat's age anyway
        pass
