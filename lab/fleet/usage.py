"""Device-hours per team and user over a period, from the runs' own start and finish times.

A run holds its `devices` of its queue's kind while it runs (a CPU run: a CPU worker's slot). A run
resumed after a stop counts from its latest start only (started_at is when the last attempt began).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from lab.runs.models import Run


def device_hours(start: datetime, end: datetime, by_team_id: bool = False) -> list[dict]:
    """One row per (team, user, queue): runs and the device-hours they held inside [start, end);
    `by_team_id` adds the team's id to each row."""
    now = timezone.now()
    runs = (Run.objects.filter(started_at__isnull=False, started_at__lt=end)
            .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=start))
            .select_related("team", "created_by"))
    rows: dict[tuple, dict] = defaultdict(lambda: {"runs": 0, "hours": 0.0})
    for run in runs:
        held_from, held_to = max(run.started_at, start), min(run.finished_at or now, end, now)
        if held_to <= held_from:
            continue
        key = (run.team.name, run.created_by.username if run.created_by else "", run.queue, run.team_id)
        rows[key]["runs"] += 1
        rows[key]["hours"] += run.devices * (held_to - held_from).total_seconds() / 3600
    return [{"team": team, "user": user, "queue": queue, "runs": row["runs"], "hours": round(row["hours"], 4),
             **({"team_id": team_id} if by_team_id else {})}
            for (team, user, queue, team_id), row in sorted(rows.items())]
