from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST

from lab import params
from lab.access import (
    artifacts_for_user,
    datasets_for_user,
    get_dataset_for_user,
    get_team_for_user,
    working_teams,
)
from lab.datasets.actions import create_dataset_from_chunks, delete_dataset
from lab.datasets.forms import EditDatasetForm, UploadDatasetForm
from lab.datasets.ingest import IngestError, stored_suffix
from lab.datasets.models import Dataset
from lab.datasets.preview import as_json, page_records, token_counts, training_view
from lab.runs.models import Artifact
from training.config import ConfigError

PAGE_SIZE = 20


@login_required
def dataset_list(request):
    form = UploadDatasetForm(request.POST or None, request.FILES or None, teams=working_teams(request.user))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            team = get_team_for_user(request.user, form.cleaned_data["team"])
            upload = form.cleaned_data["file"]
            try:
                dataset, created = create_dataset_from_chunks(
                    team, request.user, form.cleaned_data["name"], upload.name, upload.chunks(),
                    form.cleaned_data["kind"] or None)
            except IngestError as exc:
                form.add_error("file", str(exc))
            else:
                _tell_uploaded(request, dataset, created)
                return redirect("dataset-detail", pk=dataset.pk)
        status = 400
    datasets = datasets_for_user(request.user)
    if query := request.GET.get("q", "").strip():
        datasets = datasets.filter(name__icontains=query)
    return render(request, "datasets/list.html", {"datasets": datasets, "form": form, "q": query}, status=status)


def _tell_uploaded(request, dataset: Dataset, created: bool) -> None:
    if created:
        kind = dataset.get_kind_display().lower()
        messages.success(request, f"Uploaded '{dataset.name}': {dataset.n_records} {kind} records.")
    else:
        link = format_html('<a href="{}">{}</a>', reverse("dataset-detail", args=[dataset.pk]), dataset.name)
        messages.info(request, format_html("This file is already uploaded as {}: no second copy was kept.", link))


@login_required
def dataset_detail(request, pk, edit_form=None, status=200):
    dataset = get_dataset_for_user(request.user, pk)
    pages = Paginator(range(dataset.n_records), PAGE_SIZE)
    page = pages.get_page(request.GET.get("page"))
    records, unreadable = page_records(dataset, page.start_index() - 1, PAGE_SIZE)
    tokenizers = artifacts_for_user(request.user).filter(team=dataset.team, kind=Artifact.Kind.TOKENIZER)
    try:
        tokenizer_id = params.integer(request.GET, "tokenizer", min_value=1)
    except ConfigError as exc:
        return params.bad_request(exc)
    tokenizer = None if tokenizer_id is None else tokenizers.filter(pk=tokenizer_id).first()
    if tokenizer_id is not None and tokenizer is None:
        raise Http404("no such tokenizer in this dataset's team")
    stats, previews, no_preview = dataset.stats, [], ""
    shown = _record_on_page(request.GET.get("record"), len(records))
    if tokenizer is not None:
        stats = {**dataset.stats, "tokens": token_counts(dataset, tokenizer)}
        if records:
            previews, no_preview = training_view(dataset, records[shown], tokenizer)
    return render(request, "datasets/detail.html", {
        "dataset": dataset, "page": page, "records": [as_json(r) for r in records], "unreadable": unreadable,
        "stats": stats, "tokenizers": tokenizers, "tokenizer": tokenizer, "previews": previews,
        "previewed": shown, "previewed_number": page.start_index() + shown,
        "no_preview": no_preview, "edit_form": edit_form or EditDatasetForm(instance=dataset),
    }, status=status)


def _record_on_page(asked: str | None, on_page: int) -> int:
    """Which record of the page the chat preview shows: `?record=` (0 = the page's first), kept in range."""
    try:
        return min(max(int(asked or 0), 0), max(on_page - 1, 0))
    except ValueError:
        return 0


@login_required
@require_POST
def dataset_edit(request, pk):
    form = EditDatasetForm(request.POST, instance=get_dataset_for_user(request.user, pk))
    if not form.is_valid():
        return dataset_detail(request, pk, edit_form=form, status=400)
    dataset = form.save()
    messages.success(request, f"Saved '{dataset.name}'.")
    return redirect("dataset-detail", pk=dataset.pk)


@login_required
def dataset_download(request, pk):
    return dataset_response(get_dataset_for_user(request.user, pk))


def dataset_response(dataset: Dataset) -> FileResponse:
    """The stored file, streamed, named after the dataset with the suffix it was stored with."""
    try:
        stored = open(dataset.absolute_path, "rb")
    except OSError:
        raise Http404("the file of this dataset is gone") from None
    return FileResponse(stored, as_attachment=True, filename=download_name(dataset))


def download_name(dataset: Dataset) -> str:
    suffix = stored_suffix(dataset.path)
    return dataset.name if dataset.name.lower().endswith(suffix) else dataset.name + suffix


@login_required
@require_http_methods(["GET", "POST"])
def dataset_delete(request, pk):
    """GET asks to confirm; POST deletes."""
    dataset = get_dataset_for_user(request.user, pk)
    if request.method == "GET":
        return render(request, "datasets/delete.html", {"dataset": dataset})
    try:
        delete_dataset(dataset)
    except ConfigError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
        return redirect("dataset-detail", pk=dataset.pk)
    messages.success(request, f"Deleted '{dataset.name}'. Runs that used it keep its id and sha256 in their record.")
    return redirect("dataset-list")
