"""Run workflows: start, cancel, pause, resume. Tasks are enqueued only after the transaction commits."""

import functools
import logging
import subprocess
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from lab.runs.models import RESUMABLE, Run, Status
from lab.runs.signals import run_waiting
from lab.runs.streaming import publish
from lab.task_client import client
from training.config import ConfigError
from training.stages import STAGES

log = logging.getLogger(__name__)


@functools.cache
def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def enqueue(run: Run) -> None:
    """Hand the run to admission once the transaction commits: lab/fleet/admission.py sends it to its
    queue when a worker there is free for it, in priority order and within its team's quota.

    The Run row is the outbox: an admitted run whose message never reached the broker, or was lost
    there, is sent again by workers.recovery.send_lost_runs (settings.LAB_SEND_AGAIN_SECONDS).
    """
    transaction.on_commit(lambda: _admit(run))


def _admit(run: Run) -> None:
    """Let the admitting app decide when the run goes to a worker; without one, send it now."""
    if run_waiting.has_listeners(Run):
        run_waiting.send(sender=Run, run=run)
    elif Run.objects.filter(pk=run.pk, status=Status.QUEUED).update(admitted_at=timezone.now()):
        send(run)


def message_id(run: Run) -> str:
    """A task id that names its run, so the queue's waiting messages can be matched to runs."""
    return f"run-{run.pk}-{uuid.uuid4().hex[:12]}"


def run_of_message(task_id: str) -> int | None:
    prefix, _, rest = task_id.partition("-")
    pk = rest.partition("-")[0]
    return int(pk) if prefix == "run" and pk.isdigit() else None


def send(run: Run, why: str = "") -> bool:
    """Hand the run to the broker; `why` it is sent again, if it is, goes on the run first. If the broker
    cannot take it (Redis down), the run says so and stays queued, to be sent when the broker is back."""
    if why:
        _note_while_queued(run, why)
    try:
        # No result is kept (a run reports through events): no result-store subscription either,
        # which on a Redis outage breaks for good ("the Celery application must be restarted").
        client.send_task("workers.execute_run", args=[run.pk], queue=run.queue, task_id=message_id(run), ignore_result=True)
    except (OperationalError, RedisError, OSError) as exc:
        log.warning("run %s stays queued: the task queue is unreachable (%s)", run.pk, exc)
        _note_while_queued(run, "the task queue is unreachable: the run stays queued and is sent when it is back", sent=False)
        return False
    return True


def _note_while_queued(run: Run, message: str, **data) -> None:
    event = run.append_event_while_queued("status", status=Status.QUEUED, message=message, **data)
    if event is not None:
        publish(run, [event.as_message()])


def publish_on_commit(run: Run, event) -> None:
    message = event.as_message()
    transaction.on_commit(lambda: publish(run, [message]))


def create_run(team, stage: str, queue: str, config: dict, inputs: dict, user, cell=None, devices: int = 1) -> Run:
    """A queued run of `stage` with a checked `config` (its output_dir becomes the run's folder) and the
    frozen `inputs`, sent to `queue` once the transaction commits; the cell's current run, if a cell ran.
    `devices` > 1: the worker launches the stage under torchrun, one rank a device, where the stage can."""
    if devices < 1:
        raise ConfigError("devices", f"a run needs at least one device, not {devices}")
    if devices > 1 and not STAGES[stage].multi_device:
        raise ConfigError("devices", f"the {stage} stage runs on one device, not {devices}")
    with transaction.atomic():
        run = Run.objects.create(team=team, cell=cell, stage=stage, queue=queue, config={}, inputs=inputs,
                                 code_version=code_version(), created_by=user, devices=devices)
        run.config = {**config, "output_dir": str(run.output_dir)}
        run.save(update_fields=["config"])
        if cell is not None:
            cell.current_run = run
            cell.save(update_fields=["current_run", "updated_at"])
        publish_on_commit(run, run.append_event("status", status=Status.QUEUED, message="queued"))
        enqueue(run)
    return run


def cancel_run(run: Run) -> bool:
    with transaction.atomic():
        was = Run.objects.select_for_update().filter(pk=run.pk).values_list("status", flat=True).first()
        changed = run.request_cancel()
        # What the row says now, not `run` as the caller read it: a run claimed since has a training
        # process numbering its events, and one written here would collide with them.
        if changed and run.status == Status.CANCELLED:  # it was queued or paused: no worker holds it
            message = "cancelled while paused" if was == Status.PAUSED else "cancelled before it started"
            publish_on_commit(run, run.append_event("status", status=Status.CANCELLED, message=message))
        elif changed:
            transaction.on_commit(lambda: publish(run, []))
    return changed


def pause_run(run: Run, by) -> bool:
    """Pause a queued or running run for `by` (a user): its worker stops it at a checkpoint and is free
    for the next run, and the run holds no place in its team's quota until it is resumed (resume_run).

    Raises ConfigError("status", why) when the run is neither queued nor running.
    """
    with transaction.atomic():
        if not run.request_pause(by):
            raise ConfigError("status", _why_not_pausable(run))
        if run.status == Status.PAUSED:  # it was queued: no worker holds it
            publish_on_commit(run, run.append_event("status", status=Status.PAUSED, message=paused_message(run)))
        else:
            transaction.on_commit(lambda: publish(run, []))
    return True


def paused_message(run: Run, why: str = "") -> str:
    """What a paused run's status event says: where it resumes from, who paused it, and `why` it was
    settled by someone other than its worker, if it was."""
    if run.last_checkpoint:
        return f"paused at {Path(run.last_checkpoint).name} (step {run.step}) by {run.paused_by_name}{why}"
    return f"paused by {run.paused_by_name} before its first checkpoint{why}: it resumes from the start"


def _why_not_pausable(run: Run) -> str:
    reasons = {
        Status.PAUSING: "is already pausing: it stops at its next checkpoint",
        Status.PAUSED: "is already paused",
        Status.CANCELLING: "is being cancelled",
    }
    return f"run {run.pk} {reasons.get(run.status, f'is {run.status}')}: only a queued or running run can be paused"


def resume_run(run: Run, by=None) -> bool:
    """Continue a paused, cancelled, failed or lost run from its last checkpoint (a run paused before
    its first one: from the start), in the same run and seq, through admission like any queued run.

    Raises ConfigError("status", why) when the run cannot be resumed now, saying why.
    """
    if refusal := _why_not_resumable(run):
        raise ConfigError("status", refusal)
    with transaction.atomic():
        if not run.requeue(RESUMABLE, count_restart=False):  # it changed since it was read
            why = _why_not_resumable(run) or f"run {run.pk} changed meanwhile; try again"
            raise ConfigError("status", why)
        message = f"resuming from {run.last_checkpoint or 'the start'}" + (f" (resumed by {by.username})" if by else "")
        publish_on_commit(run, run.append_event("status", status=Status.QUEUED, message=message))
        enqueue(run)
    return True


def _why_not_resumable(run: Run) -> str:
    last = run.last_checkpoint
    checkpoint = f"its checkpoint {Path(last).name}" if last else "the start"
    reasons = {
        Status.QUEUED: f"is queued: it starts from {checkpoint} when a worker takes it",
        Status.RUNNING: "is running: there is nothing to resume",
        Status.CANCELLING: "is still stopping: resume it once it is cancelled",
        Status.PAUSING: "is still pausing: resume it once it is paused",
        Status.SUCCEEDED: "has finished: there is nothing left to resume",
    }
    if run.status in reasons:
        return f"run {run.pk} {reasons[run.status]}"
    if not run.last_checkpoint and run.status != Status.PAUSED:
        no_checkpoint = "has no checkpoint to resume from: run its cell again"
        return f"run {run.pk} is {run.status} and {no_checkpoint}"
    return ""
