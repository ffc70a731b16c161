"""The Models page: every checkpoint of the team (trained here, uploaded, registered), and one model's facts."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from lab.access import artifacts_for_user, get_artifact_for_user, working_teams
from lab.accounts.models import Team
from lab.datasets.ingest import IngestError
from lab.evaluations.views import evaluations_of
from lab.hub.base_models import register_model_folder
from lab.hub.downloads import training_state_files
from lab.hub.exports import export_context
from lab.runs.models import Artifact
from training.config import ConfigError
from training.model_info import inspect_model


class ModelUploadForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int)
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the folder's name.")
    file = forms.FileField(help_text="A .zip or .tar.gz of a Hugging Face model folder: config.json, model.safetensors "
                                     "(or shards with their index), tokenizer.json. Safetensors only.")

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]


class RegisterModelForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.all())
    path = forms.CharField(max_length=500, help_text="A model folder on the workers' filesystem (shared with the web).")
    name = forms.CharField(max_length=200, required=False)


@login_required
def model_list(request):
    register = RegisterModelForm(request.POST or None) if request.user.is_staff else None
    status = 200
    if register is not None and request.method == "POST":
        if register.is_valid():
            try:
                artifact = register_model_folder(register.cleaned_data["team"], register.cleaned_data["path"],
                                                 register.cleaned_data["name"], request.user)
            except IngestError as exc:
                register.add_error("path", str(exc))
            else:
                messages.success(request, f"Registered '{artifact.name}' for {artifact.team.name}.")
                return redirect("model-detail", pk=artifact.pk)
        status = 400
    models = artifacts_for_user(request.user).filter(kind=Artifact.Kind.CHECKPOINT).select_related("team", "run__cell")
    if query := request.GET.get("q", "").strip():
        models = models.filter(name__icontains=query)
    return render(request, "models/list.html", {
        "models": models, "q": query, "register": register,
        "upload": ModelUploadForm(teams=working_teams(request.user)),
    }, status=status)


@login_required
def model_detail(request, pk):
    artifact = get_artifact_for_user(request.user, pk)
    if artifact.kind != Artifact.Kind.CHECKPOINT:
        return redirect("run-detail", pk=artifact.run_id) if artifact.run_id else redirect("model-list")
    info, problem = None, None
    try:
        info = inspect_model(artifact.absolute_path)
    except ConfigError as exc:
        problem = exc.message
    training_state = training_state_files(artifact.absolute_path) if artifact.absolute_path.is_dir() else []
    return render(request, "models/detail.html", {
        "model": artifact, "info": info, "problem": problem,
        "training_state_bytes": sum(path.stat().st_size for path in training_state),
        "lineage": lineage(artifact), "classification": artifact.metadata.get("task") == "classification",
        **export_context(artifact, request.user),
        "evaluations": evaluations_of(artifact),
    })


def lineage(artifact: Artifact) -> list:
    """The model's ancestors, nearest first: the checkpoints and datasets it was trained from."""
    chain, seen, frontier = [], {artifact.pk}, [artifact]
    while frontier:
        current = frontier.pop(0)
        for parent in current.parent_artifacts.all():
            if parent.pk not in seen:
                seen.add(parent.pk)
                chain.append(parent)
                frontier.append(parent)
        chain += list(current.parent_datasets.all())
    return chain
