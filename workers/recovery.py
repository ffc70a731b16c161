"""Runs whose worker stopped heartbeating: mark them lost, then resume them (a bounded number of times)."""

import logging

from django.conf import settings
from django.db import transaction

from lab.runs.actions import enqueue, publish_on_commit
from lab.runs.models import Run, Status

log = logging.getLogger(__name__)


def reap_lost_runs() -> int:
    reaped = 0
    for run in Run.objects.with_expired_lease():
        with transaction.atomic():
            if not run.mark_lost():
                continue  # the worker renewed its lease, or another reaper got there first
            reaped += 1
            publish_on_commit(run, run.append_event("status", status=Status.LOST, message=f"worker {run.worker} stopped answering"))
            if run.restarts >= settings.LAB_MAX_RESTARTS:
                log.warning("run %s lost %s times: not resuming", run.pk, run.restarts + 1)
                continue
            run.requeue([Status.LOST], count_restart=True)
            where = f"from {run.last_checkpoint}" if run.last_checkpoint else "from the start"
            publish_on_commit(run, run.append_event("status", status=Status.QUEUED, message=f"resuming automatically {where}"))
            enqueue(run)
    return reaped
