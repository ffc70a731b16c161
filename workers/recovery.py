"""Runs whose worker stopped heartbeating: mark them lost, then resume them (a bounded number of times),
or, were they pausing, paused; queued runs whose message is gone: send them again."""

import json
import logging
import time

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery

from lab.runs.actions import enqueue, paused_message, publish_on_commit, run_of_message, send
from lab.runs.models import Run, RunEvent, Status

log = logging.getLogger(__name__)


def reap_lost_runs() -> int:
    reaped = 0
    for run in Run.objects.with_expired_lease():
        with transaction.atomic():
            if run.settle_pause():  # its worker died while it paused: it stays resumable from its last checkpoint
                reaped += 1
                why = f" (its worker {run.worker} stopped answering while it paused)"
                publish_on_commit(run, run.append_event("status", status=Status.PAUSED, message=paused_message(run, why)))
                continue
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


def send_lost_runs() -> int:
    """Send again each admitted run that has no message waiting in its queue (a run still waiting for
    admission has none by design: lab/fleet/admission.py sends it).

    Its message never reached the broker (Redis was down: the run's last event says sent=False), or
    was lost there (Redis restarted without persistence, or flushed; a worker died holding it). A
    run counts only once its last event is LAB_SEND_AGAIN_SECONDS old, so a message just taken by a
    worker about to claim the run is not mistaken for a lost one; and a copy that is not needed is
    harmless anyway: only one delivery can claim a run (Run.claim), the others end as no-ops.
    """
    last_event = RunEvent.objects.filter(run=OuterRef("pk"), seq=OuterRef("last_seq"))
    cutoff = time.time() - settings.LAB_SEND_AGAIN_SECONDS
    queued = Run.objects.filter(status=Status.QUEUED, admitted_at__isnull=False).annotate(
        queued_t=Subquery(last_event.values("t")[:1]), last_data=Subquery(last_event.values("data")[:1]))
    candidates = [run for run in queued if unsent(run) or run.queued_t is None or run.queued_t < cutoff]
    if not candidates:
        return 0
    waiting = waiting_runs({run.queue for run in candidates})
    sent = 0
    for run in candidates:
        if run.pk in waiting:
            continue
        log.warning("run %s is queued with no message in queue %s: sending it", run.pk, run.queue)
        why = "the task queue is back: sending the run" if unsent(run) else "its message was lost: sending the run again"
        sent += send(run, why)
    return sent


def unsent(run: Run) -> bool:
    return isinstance(run.last_data, dict) and run.last_data.get("sent") is False


def waiting_runs(queues: set[str]) -> set[int]:
    """Ids of the runs with a live message: waiting in one of these queues, or delivered to a worker
    less than LAB_SEND_AGAIN_SECONDS ago (it claims the run once its pool child is up: seconds on a
    busy machine). A message a worker held for longer died with it: busy workers reserve none.

    The Redis transport keeps each queue as a list of JSON messages and the delivered ones in the
    `unacked` hash, scored by delivery time in `unacked_index`; Celery's task id names the run
    (lab.runs.actions.message_id).
    """
    from workers.app import app

    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    client = redis.Redis.from_url(app.conf.broker_url, socket_timeout=10)
    try:
        messages = [json.loads(raw) for queue in queues for raw in client.lrange(prefix + queue, 0, -1)]
        recent = client.zrangebyscore(prefix + "unacked_index", time.time() - settings.LAB_SEND_AGAIN_SECONDS, "+inf")
        if recent:
            messages += [json.loads(raw)[0] for raw in client.hmget(prefix + "unacked", recent) if raw]
    finally:
        client.close()
    runs = {run_of_message(message.get("headers", {}).get("id", "")) for message in messages}
    return runs - {None}
