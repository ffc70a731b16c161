from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from lab.access import datasets_for_user, get_dataset_for_user, get_team_for_user, working_teams
from lab.datasets.actions import create_dataset_from_chunks
from lab.datasets.ingest import IngestError
from lab.notebooks.forms import UploadCorpusForm


class TeamUploadForm(UploadCorpusForm):
    team = forms.TypedChoiceField(coerce=int)


@login_required
def dataset_list(request):
    teams = working_teams(request.user)
    form = TeamUploadForm(request.POST or None, request.FILES or None)
    form.fields["team"].choices = [(t.pk, t.name) for t in teams]
    status = 200
    if request.method == "POST":
        if form.is_valid():
            team = get_team_for_user(request.user, form.cleaned_data["team"])
            upload = form.cleaned_data["file"]
            try:
                corpus = create_dataset_from_chunks(team, request.user, form.cleaned_data["name"], upload.name, upload.chunks())
            except IngestError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"Uploaded '{corpus.name}': {corpus.n_records} documents.")
                return redirect("dataset-detail", pk=corpus.pk)
        status = 400
    return render(request, "datasets/list.html", {"datasets": datasets_for_user(request.user), "form": form}, status=status)


@login_required
def dataset_detail(request, pk):
    dataset = get_dataset_for_user(request.user, pk)
    return render(request, "datasets/detail.html", {"dataset": dataset})
