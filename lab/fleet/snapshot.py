"""What the workers page shows, as JSON: each worker, its devices and the runs it holds now."""

from __future__ import annotations

from lab.fleet.models import Worker
from lab.runs.models import HELD_BY_WORKER, Run


def fleet_snapshot() -> dict:
    workers = list(Worker.objects.all())
    busy: dict[str, list[dict]] = {}
    for run in Run.objects.filter(status__in=HELD_BY_WORKER).select_related("team").order_by("pk"):
        busy.setdefault(run.worker, []).append(
            {"id": run.pk, "team": run.team.name, "stage": run.stage, "status": run.status, "step": run.step,
             "total_steps": run.total_steps})
    return {"workers": [{
        "id": w.pk, "hostname": w.hostname, "host": w.host, "queues": w.queues, "state": w.state,
        "heartbeat_age_s": round(w.heartbeat_age_s, 1), "cpu_count": w.cpu_count, "devices": w.devices,
        "nvml_error": w.nvml_error, "draining": w.draining, "runs": busy.get(w.hostname, []),
    } for w in workers]}
