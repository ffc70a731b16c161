"""The fleet pages, for staff only: everyone else gets a 404 (as for another team's things), so the
pages cannot even be found. Workers (live over ws/fleet/), the queue, usage, and the actions."""

from __future__ import annotations

import csv
import functools
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from lab import params
from lab.fleet import actions
from lab.fleet.models import FleetAction, Worker
from lab.fleet.snapshot import fleet_snapshot
from lab.fleet.usage import device_hours
from lab.runs.models import ACTIVE, Run, Status
from training.config import ConfigError

MAX_USAGE_DAYS = 3660


def staff_only(view):
    @functools.wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404("not found")
        return view(request, *args, **kwargs)

    return wrapped


def _pk(value) -> int:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise Http404("not found") from None
    if not 0 < pk < 2**63:
        raise Http404("not found")
    return pk


@staff_only
def workers_page(request):
    return render(request, "fleet/workers.html", {
        "snapshot": fleet_snapshot(),
        "actions": FleetAction.objects.select_related("actor")[:20],
    })


@staff_only
def queue_page(request):
    runs = list(Run.objects.filter(status__in=ACTIVE).select_related("team", "created_by").order_by("created_at", "pk"))
    queued = [r for r in runs if r.status == Status.QUEUED]
    consumers = {}
    for worker in Worker.objects.all():
        if worker.state == Worker.State.ONLINE:
            for queue in worker.queues:
                consumers[queue] = consumers.get(queue, 0) + 1
    busy = {r.queue: 0 for r in runs}
    for r in runs:
        if r.status != Status.QUEUED:
            busy[r.queue] += 1
    rows = []
    for run in runs:
        row = {"run": run, "position": None, "why": ""}
        if run.status == Status.QUEUED:
            same_queue = [r for r in queued if r.queue == run.queue]
            row["position"] = same_queue.index(run) + 1
            if not consumers.get(run.queue):
                row["why"] = f"no online worker takes the '{run.queue}' queue"
            elif busy.get(run.queue, 0) >= consumers[run.queue]:
                row["why"] = f"every worker of '{run.queue}' is busy"
        rows.append(row)
    return render(request, "fleet/queue.html", {"rows": rows})


def _period(request) -> tuple:
    days = params.integer(request.GET, "days", min_value=1, max_value=MAX_USAGE_DAYS) or 30
    end = timezone.now()
    return days, end - timedelta(days=days), end


@staff_only
def usage_page(request):
    try:
        days, start, end = _period(request)
    except ConfigError as exc:
        return params.bad_request(exc)
    rows = device_hours(start, end)
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="device-hours-{days}d.csv"'
        writer = csv.DictWriter(response, fieldnames=["team", "user", "queue", "runs", "hours"])
        writer.writeheader()
        writer.writerows(rows)
        return response
    return render(request, "fleet/usage.html", {"rows": rows, "days": days})


@staff_only
@require_POST
def worker_drain(request, pk):
    worker = get_object_or_404(Worker, pk=_pk(pk))
    draining = request.POST.get("draining", "1") != "0"
    action = actions.set_draining(worker, draining, request.user)
    messages.success(request, f"{action.action} {worker.hostname}: {action.detail}")
    return redirect("fleet-workers")


@staff_only
@require_POST
def run_action(request, pk, action):
    run = get_object_or_404(Run.objects.select_related("team"), pk=_pk(pk))
    try:
        done = (actions.cancel_any_run if action == "cancel" else actions.requeue_run)(run, request.user)
    except ConfigError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{done.action}: {done.target}")
    return redirect("fleet-queue")
