from pathlib import Path

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from lab import params
from lab.access import (
    get_cell_for_user,
    get_notebook_for_user,
    get_team_for_user,
    notebooks_for_user,
    working_teams,
)
from lab.datasets.versions import clean_split
from lab.feedback.items import ItemErrors
from lab.notebooks import estimates
from lab.notebooks.actions import start_cell_run
from lab.notebooks.annotate import campaigns_of, generation_record, start_campaign
from lab.notebooks.cell_kinds import CELL_KINDS
from lab.notebooks.form_layout import sections
from lab.notebooks.forms import FORMS
from lab.notebooks.kinds import cell_output, stale_inputs
from lab.notebooks.models import Cell, Notebook
from training.config import ConfigError


class NewNotebookForm(forms.Form):
    title = forms.CharField(max_length=200)
    team = forms.TypedChoiceField(coerce=int)


@login_required
def notebook_list(request):
    teams = working_teams(request.user)
    if not teams.exists() and request.user.memberships.exists():
        return redirect("campaign-list")  # an annotator only: their campaigns are all they see
    form = NewNotebookForm(request.POST or None)
    form.fields["team"].choices = [(t.pk, t.name) for t in teams]
    if request.method == "POST" and form.is_valid():
        team = get_team_for_user(request.user, form.cleaned_data["team"])
        notebook = Notebook.objects.create(team=team, title=form.cleaned_data["title"], created_by=request.user)
        return redirect("notebook-detail", pk=notebook.pk)
    notebooks = notebooks_for_user(request.user)
    return render(request, "notebooks/list.html", {"notebooks": notebooks, "form": form, "teams": teams})


def _cell_context(cell: Cell, bound_form=None) -> dict:
    kind = CELL_KINDS[cell.kind]
    output = cell_output(cell)
    form = bound_form or FORMS[cell.kind](cell=cell)
    return {
        "cell": cell,
        "kind": kind,
        "form": form,
        "fields": sections(form, kind),
        "runnable": kind.runnable,
        "output": output,
        "classifier_data_id": f"classifier-{cell.pk}",
        "stale": stale_inputs(cell),
        "history": cell.runs.order_by("-created_at")[:10],
        # What the kind's partial shows beside its output (the declaration's `context`).
        "extra": kind.extra_context(cell, output) if kind.extra_context else None,
    }


def pretrain_estimate(cell: Cell, output=None) -> dict | None:
    try:
        return estimates.for_cell(cell)
    except ConfigError:
        return None  # a stored value the stage refuses: the form and Run say which


def generations_of(cell: Cell, output) -> dict | None:
    return generations_preview(output.path) if output else None


def campaigns(cell: Cell, output=None):
    return campaigns_of(cell)


def generations_preview(path: str, shown: int = 6) -> dict:
    """How many responses a generate run wrote, and the first few (the file is read line by line);
    `error` names the line that cannot be read."""
    first, count = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for count, line in enumerate(f, start=1):
                if len(first) < shown:
                    first.append(generation_record(line, f"{Path(path).name}, line {count}"))
    except ConfigError as exc:
        return {"count": 0, "first": [], "error": exc.message}
    except (OSError, ValueError) as exc:
        return {"count": 0, "first": [], "error": f"{Path(path).name} cannot be read: {exc}"}
    return {"count": count, "first": first}


def clean_report(cell: Cell, output=None) -> dict | None:
    """What the clean cell's current run removed, rule by rule, with examples (its artifact event)."""
    run = cell.current_run
    event = run and run.events.filter(type="artifact").order_by("-seq").first()
    if event is None:
        return None
    report = event.data.get("metadata", {})
    rules = [{"rule": rule.replace("_", " "), "removed": n, "examples": report.get("examples", {}).get(rule, [])}
             for rule, n in report.get("removed", {}).items()]
    return {**report, "rules": rules, "validation": clean_split(run, "validation")}


@login_required
def notebook_detail(request, pk, bound_cell=None, bound_form=None, status=200):
    notebook = get_notebook_for_user(request.user, pk)
    cells = [
        _cell_context(cell, bound_form if bound_cell and cell.pk == bound_cell.pk else None)
        for cell in notebook.cells.select_related("current_run")
    ]
    return render(
        request, "notebooks/detail.html",
        {"notebook": notebook, "cells": cells, "kinds": Cell.Kind.choices}, status=status,
    )


@login_required
@require_POST
def cell_add(request, pk):
    notebook = get_notebook_for_user(request.user, pk)
    kind = request.POST.get("kind")
    if kind not in Cell.Kind.values:
        messages.error(request, f"kind: unknown cell kind {kind!r}")
        return redirect("notebook-detail", pk=notebook.pk)
    last = notebook.cells.order_by("-position").first()
    cell = Cell.objects.create(notebook=notebook, kind=kind, position=(last.position + 1) if last else 0,
                               title=request.POST.get("title", "")[:200])
    return redirect(reverse("notebook-detail", args=[notebook.pk]) + f"#cell-{cell.pk}")


@login_required
@require_POST
def cell_save(request, pk):
    cell = get_cell_for_user(request.user, pk)
    form = FORMS[cell.kind](request.POST, cell=cell)
    if not form.is_valid():
        return notebook_detail(request, cell.notebook.pk, bound_cell=cell, bound_form=form, status=400)
    cell.config = form.cleaned_data
    cell.title = request.POST.get("title", cell.title)[:200]
    cell.save()
    messages.success(request, f"Saved '{cell.display_title}'.")
    if "run" in request.POST:
        return cell_run(request, pk)
    return redirect(reverse("notebook-detail", args=[cell.notebook.pk]) + f"#cell-{cell.pk}")


@login_required
@require_POST
def cell_run(request, pk):
    cell = get_cell_for_user(request.user, pk)
    if (starter := CELL_KINDS[cell.kind].starter) is not None:
        return starter(request, cell)
    try:
        run = start_cell_run(cell, request.user)
    except ConfigError as exc:
        messages.error(request, f"{cell.display_title} — {exc.field}: {exc.message}")
    else:
        messages.success(request, f"Run {run.pk} queued.")
    return redirect(reverse("notebook-detail", args=[cell.notebook.pk]) + f"#cell-{cell.pk}")


def open_campaign(request, cell: Cell):
    """An annotate cell's "Run": the feedback campaign of its generated pairs, started once."""
    try:
        campaign, created = start_campaign(cell, request.user)
    except (ConfigError, ValueError, ItemErrors) as exc:
        field, message = (exc.field, exc.message) if isinstance(exc, ConfigError) else ("campaign", str(exc))
        messages.error(request, f"{cell.display_title} — {field}: {message}")
        return redirect(reverse("notebook-detail", args=[cell.notebook.pk]) + f"#cell-{cell.pk}")
    if created:
        messages.success(request, f"Campaign '{campaign.name}' started with {campaign.items.count()} pairs.")
    return redirect("campaign-detail", pk=campaign.pk)


@login_required
@require_POST
def cell_delete(request, pk):
    cell = get_cell_for_user(request.user, pk)
    notebook_pk = cell.notebook.pk
    cell.delete()
    return redirect("notebook-detail", pk=notebook_pk)


@login_required
@require_POST
def cell_move(request, pk):
    cell = get_cell_for_user(request.user, pk)
    cells = list(cell.notebook.cells.all())
    i = cells.index(cell)
    j = i - 1 if request.POST.get("direction") == "up" else i + 1
    if 0 <= j < len(cells):
        cells[i], cells[j] = cells[j], cells[i]
        with transaction.atomic():
            for position, c in enumerate(cells):
                Cell.objects.filter(pk=c.pk).update(position=position)
    return redirect(reverse("notebook-detail", args=[cell.notebook.pk]) + f"#cell-{cell.pk}")


@login_required
@require_POST
def cell_use_run(request, pk):
    """Make one of the cell's earlier runs its current output again."""
    cell = get_cell_for_user(request.user, pk)
    try:
        run_id = params.integer(request.POST, "run", min_value=1, required=True)
    except ConfigError as exc:
        return params.bad_request(exc)
    run = cell.runs.filter(pk=run_id).first()
    if run is None:
        raise Http404("no such run of this cell")
    cell.current_run = run
    cell.save(update_fields=["current_run", "updated_at"])
    return redirect(reverse("notebook-detail", args=[cell.notebook.pk]) + f"#cell-{cell.pk}")


@login_required
def cell_estimate(request, pk):
    """Parameter count, tokens per step, FLOPs and the Chinchilla budget for the form's current values."""
    cell = get_cell_for_user(request.user, pk)
    try:
        return JsonResponse(estimates.for_cell(cell, overrides=request.GET.dict()))
    except ConfigError as exc:
        return JsonResponse({"field": exc.field, "error": exc.message}, status=400)
