"""The fleet pages, for staff only: everyone else gets a 404 (as for another team's things), so the
pages cannot even be found. Workers (live over ws/fleet/), the queue, usage, and the actions."""

from __future__ import annotations

import csv
import functools
from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from lab import params
from lab.accounts.models import Team
from lab.fleet import actions
from lab.fleet.admission import plan
from lab.fleet.models import FleetAction, TeamQuota, Worker
from lab.fleet.snapshot import fleet_snapshot
from lab.fleet.usage import device_hours
from lab.runs.models import HELD_BY_WORKER, Run, Status
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
    """Running runs, then the queued ones in the order they start: those already sent (workers take
    them first, in the order sent), then those that wait, in the order admission takes them
    (lab/fleet/admission.plan), each with its position in its queue and why it waits; then the
    paused ones; the teams' quotas below."""
    running = Run.objects.filter(status__in=HELD_BY_WORKER).select_related("team", "created_by").order_by("started_at", "pk")
    rows = [{"run": run} for run in running]
    sent = Run.objects.filter(status=Status.QUEUED, admitted_at__isnull=False).select_related("team", "created_by")
    rows += [{"run": run, "why": "sent: a worker takes it next"} for run in sent.order_by("admitted_at", "pk")]
    rows += [{"run": d.run, "position": d.position, "why": d.why or "admitted now: a worker is free for it"}
             for d in plan()]
    paused = Run.objects.filter(status=Status.PAUSED).select_related("team", "created_by", "paused_by").order_by("finished_at", "pk")
    rows += [{"run": run, "why": f"paused by {run.paused_by_name}: it waits for a resume"} for run in paused]
    teams = Team.objects.select_related("quota").order_by("name")
    return render(request, "fleet/queue.html", {"rows": rows, "teams": teams})


@staff_only
@require_POST
def run_priority(request, pk):
    run = get_object_or_404(Run, pk=_pk(pk))
    try:
        priority = params.integer(request.POST, "priority", min_value=-1000, max_value=1000, required=True)
        action = actions.set_priority(run, priority, request.user)
    except ConfigError as exc:
        if exc.field == "priority" and "only a queued run" in exc.message:
            messages.error(request, exc.message)
            return redirect("fleet-queue")
        return params.bad_request(exc)
    messages.success(request, f"run {run.pk}: priority {action.detail}")
    return redirect("fleet-queue")


class QuotaForm(forms.ModelForm):
    class Meta:
        model = TeamQuota
        fields = ["max_gpus", "gpu_hours_per_month"]

    def clean_gpu_hours_per_month(self):
        hours = self.cleaned_data["gpu_hours_per_month"]
        if hours is not None and hours < 0:
            raise forms.ValidationError("must not be negative")
        return hours


@staff_only
@require_POST
def team_quota(request, pk):
    team = get_object_or_404(Team, pk=_pk(pk))
    form = QuotaForm(request.POST)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return params.bad_request(ConfigError(field, " ".join(errors)))
    actions.set_quota(team, form.cleaned_data["max_gpus"], form.cleaned_data["gpu_hours_per_month"], request.user)
    messages.success(request, f"Quota of {team.name} saved.")
    return redirect("fleet-queue")


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


RUN_ACTIONS = {"cancel": actions.cancel_any_run, "requeue": actions.requeue_run, "pause": actions.pause_any_run,
               "resume": actions.resume_any_run}


@staff_only
@require_POST
def run_action(request, pk, action):
    run = get_object_or_404(Run.objects.select_related("team"), pk=_pk(pk))
    try:
        done = RUN_ACTIONS[action](run, request.user)
    except ConfigError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{done.action}: {done.target}")
    return redirect("fleet-queue")
