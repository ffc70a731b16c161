"""Admission: the lab decides when a queued run goes to the broker, and Celery carries it.

A run is sent only when an online worker that consumes its queue is free for it (holds no run, is not
draining, has as many devices as the run asks for), highest priority first, then oldest; a team at
its quota (concurrent GPUs, GPU-hours this month) waits while other teams' runs go ahead. So the
queue page's order (`plan`) is the order runs start in, and no run piles onto a busy worker.

`admit` runs when a run is queued (the run_waiting signal), when a worker registers, when a run
ends on a worker, when staff undrain a worker or change a priority or a quota, and on every sweep of
the control worker (workers.tasks.reap_lost_runs), which also catches anything a crash missed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from lab.fleet.models import TeamQuota, Worker
from lab.fleet.usage import device_hours
from lab.runs.actions import publish_on_commit, send
from lab.runs.models import HELD_BY_WORKER, Run, Status

log = logging.getLogger(__name__)
GPU_QUEUE = "gpu"


@dataclass
class Decision:
    run: Run
    position: int
    """1-based, among the runs of its queue that wait."""
    why: str = ""
    """Why it waits; empty when it is admitted now."""
    worker: str = ""
    """The free worker it was planned onto."""


@dataclass
class _Fleet:
    free: list[Worker]
    gpus_in_use: dict[int, int] = field(default_factory=dict)
    gpu_hours: dict[int, float] = field(default_factory=dict)
    quotas: dict[int, TeamQuota] = field(default_factory=dict)

    def take(self, run: Run) -> Worker | None:
        fitting = [w for w in self.free if run.queue in w.queues and capacity(w) >= run.devices]
        if not fitting:
            return None
        # The smallest worker that fits: a one-GPU run leaves the eight-GPU worker to the runs that need it.
        worker = min(fitting, key=lambda w: (len(w.devices), w.hostname))
        self.free.remove(worker)
        return worker


def capacity(worker: Worker) -> int:
    """How many devices a worker offers a run: its GPUs, or on a host without any its CPU cores (a
    multi-device run there trains with one gloo rank per device, docs/fleet.md)."""
    return len(worker.devices) or max(worker.cpu_count, 1)


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _fleet(now: datetime, runs: list[Run]) -> _Fleet:
    """The free workers and the teams' use, given every held or queued run (`runs`)."""
    online = [w for w in Worker.objects.filter(stopped_at__isnull=True, draining=False) if w.state == Worker.State.ONLINE]
    busy = {run.worker for run in runs if run.status in HELD_BY_WORKER}
    fleet = _Fleet(free=[w for w in online if w.hostname not in busy])
    for run in runs:
        if run.queue == GPU_QUEUE and (run.status in HELD_BY_WORKER or run.admitted_at is not None):
            fleet.gpus_in_use[run.team_id] = fleet.gpus_in_use.get(run.team_id, 0) + run.devices
    fleet.quotas = {q.team_id: q for q in TeamQuota.objects.all()}
    if any(q.gpu_hours_per_month is not None for q in fleet.quotas.values()):
        for row in device_hours(_month_start(now), now, by_team_id=True):
            if row["queue"] == GPU_QUEUE:
                fleet.gpu_hours[row["team_id"]] = fleet.gpu_hours.get(row["team_id"], 0.0) + row["hours"]
    return fleet


def _over_quota(run: Run, fleet: _Fleet) -> str:
    quota = fleet.quotas.get(run.team_id)
    if quota is None or run.queue != GPU_QUEUE:
        return ""
    in_use = fleet.gpus_in_use.get(run.team_id, 0)
    if quota.max_gpus is not None and in_use + run.devices > quota.max_gpus:
        return f"the team's quota: {in_use} of its {quota.max_gpus} GPUs in use"
    used = fleet.gpu_hours.get(run.team_id, 0.0)
    if quota.gpu_hours_per_month is not None and used >= quota.gpu_hours_per_month:
        return f"the team's quota: {used:.1f} of its {quota.gpu_hours_per_month:g} GPU-hours this month used"
    return ""


def _no_worker(run: Run, workers: list[Worker]) -> str:
    online = [w for w in workers if run.queue in w.queues and w.state == Worker.State.ONLINE]
    if not online:
        return f"no online worker takes the '{run.queue}' queue"
    if all(capacity(w) < run.devices for w in online):
        return f"no worker of '{run.queue}' has {run.devices} devices"
    return f"a free worker of '{run.queue}' (all are busy)"


def plan(now: datetime | None = None) -> list[Decision]:
    """Every queued run, in the order admission takes them: which go now, and why the others wait."""
    now = now or timezone.now()
    # The runs are read at once: a worker claiming its sent run between two reads would be seen neither
    # busy nor awaited, and a second run sent to it while it trains.
    runs = list(Run.objects.filter(status__in=(*HELD_BY_WORKER, Status.QUEUED)).select_related("team", "created_by"))
    fleet = _fleet(now, runs)
    workers = list(Worker.objects.all())
    queued = [run for run in runs if run.status == Status.QUEUED]
    # Admitted runs not yet claimed hold their message in the queue: each will take a free worker first.
    for run in sorted((r for r in queued if r.admitted_at), key=lambda r: (r.admitted_at, r.pk)):
        fleet.take(run)
    decisions, positions = [], {}
    for run in sorted((r for r in queued if not r.admitted_at), key=lambda r: (-r.priority, r.created_at, r.pk)):
        positions[run.queue] = positions.get(run.queue, 0) + 1
        decision = Decision(run, positions[run.queue])
        decision.why = _over_quota(run, fleet)
        if not decision.why:
            worker = fleet.take(run)
            if worker is None:
                decision.why = _no_worker(run, workers)
            else:
                decision.worker = worker.hostname
                if run.queue == GPU_QUEUE:
                    fleet.gpus_in_use[run.team_id] = fleet.gpus_in_use.get(run.team_id, 0) + run.devices
        decisions.append(decision)
    return decisions


def admit() -> list[int]:
    """Send every run the plan admits now; note on the others why they wait (once per reason)."""
    admitted = []
    with transaction.atomic():
        list(Worker.objects.select_for_update().order_by("pk"))  # one admission at a time (PostgreSQL)
        for decision in plan():
            run = decision.run
            if not decision.why:
                if Run.objects.filter(pk=run.pk, status=Status.QUEUED, admitted_at__isnull=True).update(
                        admitted_at=timezone.now(), waiting_for=""):
                    admitted.append(run.pk)
                    transaction.on_commit(lambda run=run: send(run))
            elif decision.why != run.waiting_for:
                Run.objects.filter(pk=run.pk).update(waiting_for=decision.why)
                event = run.append_event_while_queued("status", status=Status.QUEUED, message=f"waiting for {decision.why}")
                if event is not None:
                    publish_on_commit(run, event)
    if admitted:
        log.info("admitted runs %s", admitted)
    return admitted


def admit_quietly() -> None:
    """admit() where a failure must not break the caller (a worker's start, a run's end)."""
    try:
        admit()
    except Exception:  # noqa: BLE001 - the control worker's next sweep admits what this missed
        log.exception("admission failed; the next sweep tries again")
