from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import redirect, render

from lab.access import datasets_for_user, get_dataset_for_user, get_team_for_user, working_teams
from lab.datasets.actions import create_dataset_from_chunks
from lab.datasets.forms import UploadDatasetForm
from lab.datasets.ingest import IngestError
from lab.datasets.preview import preview_page

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
                dataset = create_dataset_from_chunks(team, request.user, form.cleaned_data["name"], upload.name,
                                                     upload.chunks(), form.cleaned_data["kind"] or None)
            except IngestError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"Uploaded '{dataset.name}': {dataset.n_records} {dataset.get_kind_display().lower()} records.")
                return redirect("dataset-detail", pk=dataset.pk)
        status = 400
    datasets = datasets_for_user(request.user)
    if query := request.GET.get("q", "").strip():
        datasets = datasets.filter(name__icontains=query)
    return render(request, "datasets/list.html", {"datasets": datasets, "form": form, "q": query}, status=status)


@login_required
def dataset_detail(request, pk):
    dataset = get_dataset_for_user(request.user, pk)
    pages = Paginator(range(dataset.n_records), PAGE_SIZE)
    page = pages.get_page(request.GET.get("page"))
    records = preview_page(dataset, page.start_index() - 1, PAGE_SIZE)
    return render(request, "datasets/detail.html", {"dataset": dataset, "page": page, "records": records})
