"""What staff do to the fleet, each kept in the audit trail (FleetAction): drain a worker (its run
finishes, it takes nothing new) and undrain it, cancel, pause or resume any team's run, requeue a
failed one, change a queued run's priority or a team's quota.

Draining uses Celery's own remote control: the worker stops consuming its queues
(`cancel_consumer`) and starts again on undrain (`add_consumer`); a drained worker that restarts
reads its flag when it registers and stops consuming again (workers/fleet.py).
"""

from __future__ import annotations

from django.db import transaction
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from lab.fleet.admission import admit_quietly
from lab.fleet.models import FleetAction, TeamQuota, Worker
from lab.runs.actions import cancel_run, pause_run, resume_run
from lab.runs.models import Run, Status
from lab.task_client import client
from training.config import ConfigError

CONTROL_TIMEOUT_S = 2.0


def _audit(actor, action: str, target: str, detail: str = "") -> FleetAction:
    return FleetAction.objects.create(actor=actor, action=action, target=target, detail=detail)


def _tell_worker(worker: Worker, command: str) -> str:
    """Send `cancel_consumer` / `add_consumer` for each of the worker's queues; what it answered."""
    answered = []
    try:
        for queue in worker.queues:
            replies = getattr(client.control, command)(queue, destination=[worker.hostname], reply=True,
                                                       timeout=CONTROL_TIMEOUT_S)
            answered += [str(answer.get("ok") or answer.get("error") or answer)
                         for reply in replies or [] for answer in reply.values()]
    except (OperationalError, RedisError, OSError) as exc:
        return f"the broker is unreachable ({exc}): the worker follows its flag when it next registers"
    return "; ".join(answered) or "no answer (the worker may be offline): it follows its flag when it next registers"


def set_draining(worker: Worker, draining: bool, actor) -> FleetAction:
    with transaction.atomic():
        Worker.objects.filter(pk=worker.pk).update(draining=draining)
        worker.refresh_from_db()
    answer = _tell_worker(worker, "cancel_consumer" if draining else "add_consumer")
    if not draining:
        admit_quietly()
    return _audit(actor, "drain" if draining else "undrain", f"worker {worker.hostname}", answer)


def cancel_any_run(run: Run, actor) -> FleetAction:
    if not cancel_run(run):
        raise ConfigError("status", f"run {run.pk} is {run.status}: there is nothing to cancel")
    return _audit(actor, "cancel", f"run {run.pk}", f"team {run.team.name}, stage {run.stage}")


def pause_any_run(run: Run, actor) -> FleetAction:
    """Stop a queued or running run at a checkpoint, freeing its worker for the next run (ConfigError
    saying why not, as the run page does)."""
    pause_run(run, actor)
    admit_quietly()  # a queued run paused frees its place at once
    return _audit(actor, "pause", f"run {run.pk}", f"team {run.team.name}, stage {run.stage}, step {run.step}")


def resume_any_run(run: Run, actor) -> FleetAction:
    """A paused run back to the queue, with its priority, to continue from its last checkpoint."""
    if run.status != Status.PAUSED:
        raise ConfigError("status", f"run {run.pk} is {run.status}: only a paused run is resumed here (requeue the others)")
    resume_run(run, actor)
    return _audit(actor, "resume", f"run {run.pk}", f"from {run.last_checkpoint or 'the start'}")


def requeue_run(run: Run, actor) -> FleetAction:
    """Back to the queue from its last checkpoint (ConfigError saying why not, as the run page does)."""
    resume_run(run)
    return _audit(actor, "requeue", f"run {run.pk}", f"from {run.last_checkpoint}")


def set_priority(run: Run, priority: int, actor) -> FleetAction:
    """A queued run's place: higher goes first (runs of equal priority go oldest first)."""
    if not Run.objects.filter(pk=run.pk, status="queued").update(priority=priority):
        raise ConfigError("priority", f"run {run.pk} is {run.status}: only a queued run's priority can change")
    was, run.priority = run.priority, priority
    admit_quietly()
    return _audit(actor, "priority", f"run {run.pk}", f"{was} → {priority}")


def set_quota(team, max_gpus: int | None, gpu_hours_per_month: float | None, actor) -> FleetAction:
    TeamQuota.objects.update_or_create(team=team, defaults={"max_gpus": max_gpus, "gpu_hours_per_month": gpu_hours_per_month})
    admit_quietly()
    limits = f"{'no limit' if max_gpus is None else max_gpus} GPUs, " \
             f"{'no limit' if gpu_hours_per_month is None else gpu_hours_per_month} GPU-hours a month"
    return _audit(actor, "quota", f"team {team.name}", limits)
