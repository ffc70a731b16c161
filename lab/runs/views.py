import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lab import params
from lab.access import get_run_for_user
from lab.runs.actions import cancel_run, pause_run, resume_run
from lab.runs.compare import candidates
from lab.runs.models import Run
from lab.runs.streaming import run_state
from training.config import ConfigError


def deleted_inputs(run: Run) -> list[str]:
    """Keys of the run's dataset inputs whose dataset was deleted since: the run keeps the record, not the data."""
    used = [(key, value["id"]) for key, value in run.frozen_inputs() if value.get("kind") == "dataset"]
    present = set(run.team.datasets.filter(pk__in=[pk for _, pk in used]).values_list("pk", flat=True))
    return [key for key, pk in used if pk not in present]


@login_required
def run_detail(request, pk):
    run = get_run_for_user(request.user, pk)
    return render(request, "runs/detail.html", {
        "run": run,
        "state_json": json.dumps(run_state(run)),
        "config_json": json.dumps(run.config, indent=2),
        "artifacts": run.artifacts.all(),
        "deleted_inputs": deleted_inputs(run),
        "compare_candidates": candidates(run),
    })


def _back(request, run):
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and not next_url.startswith("//"):
        return redirect(next_url)
    return redirect("run-detail", pk=run.pk)


@login_required
@require_POST
def run_cancel(request, pk):
    run = get_run_for_user(request.user, pk)
    if not cancel_run(run):
        messages.error(request, f"status: run {run.pk} is {run.status} and cannot be cancelled")
    return _back(request, run)


@login_required
@require_POST
def run_pause(request, pk):
    """Stop the team's run at a checkpoint: the worker and the team's quota are free until it resumes."""
    run = get_run_for_user(request.user, pk)
    try:
        pause_run(run, request.user)
    except ConfigError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    return _back(request, run)


@login_required
@require_POST
def run_resume(request, pk):
    run = get_run_for_user(request.user, pk)
    try:
        resume_run(run, request.user)
    except ConfigError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    return _back(request, run)


EVENTS_PAGE = 5000


def stored_events(run: Run, query) -> list[dict]:
    """The run's stored events after `?after=` (a seq; absent: from the first), at most EVENTS_PAGE of
    them, for this page and the API alike. ConfigError("after") when it is not a whole number >= 0."""
    after = params.integer(query, "after") or 0
    return [e.as_message() for e in run.events.filter(seq__gt=after)[:EVENTS_PAGE]]


@login_required
def run_events(request, pk):
    """The stored events after `?after=` (the websocket replays the same; this serves scripts)."""
    run = get_run_for_user(request.user, pk)
    try:
        events = stored_events(run, request.GET)
    except ConfigError as exc:
        return JsonResponse({"field": exc.field, "error": exc.message}, status=400)
    return JsonResponse({"run": run_state(run), "events": events})
