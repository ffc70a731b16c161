"""Device-hours per team and user over a period, from the runs' status events.

A run holds its `devices` of its queue's kind (a CPU run: a CPU worker's slot) from each `running`
status event (the start of an attempt on a worker) to the next status that lets them go (succeeded,
failed, cancelled, lost, paused, or queued when its worker handed it back), or until now while a worker
still holds it. Every attempt counts: a run paused and resumed, or lost and resumed, counts each stretch
it held a device, so pausing never resets a team's GPU-hours.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.utils import timezone

from lab.runs.models import HELD_BY_WORKER, Run, RunEvent, Status


def held_spans(start: datetime, end: datetime) -> dict[int, list[tuple[float, float]]]:
    """Per run id, the stretches (Unix seconds) it held its devices inside [start, end)."""
    now = timezone.now().timestamp()
    start_s, end_s = start.timestamp(), min(end.timestamp(), now)
    # A stretch inside the period has a status event in it or after it, or is still going on.
    changed = RunEvent.objects.filter(type="status", t__gte=start_s).values("run_id")
    held_now = set(Run.objects.filter(status__in=HELD_BY_WORKER).values_list("pk", flat=True))
    run_ids = set(changed.distinct().values_list("run_id", flat=True)) | held_now
    events = (RunEvent.objects.filter(run_id__in=run_ids, type="status").order_by("run_id", "seq")
              .values_list("run_id", "t", "data__status"))
    spans: dict[int, list[tuple[float, float]]] = defaultdict(list)
    opened: dict[int, float] = {}

    def close(run_id: int, at: float) -> None:
        held_from, held_to = max(opened.pop(run_id), start_s), min(at, end_s)
        if held_to > held_from:
            spans[run_id].append((held_from, held_to))

    for run_id, t, status in events:
        if status == Status.RUNNING:
            opened.setdefault(run_id, t)
        elif status not in HELD_BY_WORKER and run_id in opened:
            close(run_id, t)
    for run_id in [r for r in opened if r in held_now]:
        close(run_id, now)
    return spans


def device_hours(start: datetime, end: datetime, by_team_id: bool = False) -> list[dict]:
    """One row per (team, user, queue): runs and the device-hours they held inside [start, end);
    `by_team_id` adds the team's id to each row."""
    spans = held_spans(start, end)
    rows: dict[tuple, dict] = defaultdict(lambda: {"runs": 0, "hours": 0.0})
    for run in Run.objects.filter(pk__in=spans).select_related("team", "created_by"):
        key = (run.team.name, run.created_by.username if run.created_by else "", run.queue, run.team_id)
        rows[key]["runs"] += 1
        rows[key]["hours"] += run.devices * sum(to - since for since, to in spans[run.pk]) / 3600
    return [{"team": team, "user": user, "queue": queue, "runs": row["runs"], "hours": round(row["hours"], 4),
             **({"team_id": team_id} if by_team_id else {})}
            for (team, user, queue, team_id), row in sorted(rows.items())]
