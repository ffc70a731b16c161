"""An evaluation's report page, the evaluate cell's table, and a checkpoint's evaluations (for its model page)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render

from lab.access import get_artifact_for_user
from lab.evaluations.results import disagreements, failures, metric_table, read_rows
from lab.runs.models import Artifact

PAGE_SIZE = 20


@login_required
def evaluation_report(request, pk):
    """`?model=` whose failures to page (`page`); `?a=`&`b=` the two checkpoints side by side (`pairs_page`)."""
    evaluation = get_artifact_for_user(request.user, pk)
    if evaluation.kind != Artifact.Kind.EVALUATION:
        raise Http404("not found")
    metadata = evaluation.metadata
    labels = [m.get("label") for m in metadata.get("models", []) if isinstance(m, dict)]
    model = _choice(request.GET.get("model"), labels, 0)
    a, b = _choice(request.GET.get("a"), labels, 0), _choice(request.GET.get("b"), labels, 1)
    rows, error = read_rows(evaluation.absolute_path)
    return render(request, "evaluations/report.html", {
        "evaluation": evaluation, "meta": metadata, "table": metric_table(metadata), "labels": labels,
        "model": model, "a": a, "b": b, "error": error,
        "failures": Paginator(failures(rows, model), PAGE_SIZE).get_page(request.GET.get("page")),
        "pairs": Paginator(disagreements(rows, a, b), PAGE_SIZE).get_page(request.GET.get("pairs_page"))
        if a and b and a != b else None,
        "perplexity": metadata.get("task") == "perplexity",
    })


def _choice(value, labels: list, default: int):
    """`value` when it is one of the labels, else the label at `default` (None when there are too few)."""
    if value in labels:
        return value
    return labels[default] if len(labels) > default else None


def evaluation_table(cell, output) -> dict | None:
    """The evaluate cell's extra context: its output's table (read from the artifact's metadata)."""
    if output is None:
        return None
    return {"table": metric_table(output.metadata), "chart_id": f"evaluation-{cell.pk}", "task": output.metadata.get("task"),
            "dataset": output.metadata.get("dataset"), "examples": output.metadata.get("examples")}


def evaluations_of(checkpoint: Artifact) -> list[dict]:
    """Every evaluation the checkpoint had, newest first, with its own metrics in each."""
    found = []
    for evaluation in Artifact.objects.filter(kind=Artifact.Kind.EVALUATION, parent_artifacts=checkpoint,
                                              team=checkpoint.team).select_related("run"):
        mine = next((m for m in evaluation.metadata.get("models", [])
                     if isinstance(m, dict) and m.get("artifact") == checkpoint.pk), {})
        metrics = {name: m.get("value") for name, m in mine.get("metrics", {}).items() if isinstance(m, dict)}
        found.append({"evaluation": evaluation, "task": evaluation.metadata.get("task"),
                      "dataset": evaluation.metadata.get("dataset"), "metrics": metrics})
    return found
