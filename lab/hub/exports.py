"""A checkpoint exported quantised for serving: the export stage (training/export.py) runs on a worker,
never in the web process; the model page starts one and lists what earlier ones made, with their
sizes and perplexities."""

from dataclasses import asdict

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from lab import params
from lab.access import datasets_for_user, get_artifact_for_user
from lab.datasets.models import Dataset
from lab.notebooks.kinds import artifact_output, dataset_output
from lab.runs.actions import create_run
from lab.runs.models import Artifact, Run
from training.config import ConfigError
from training.export_config import QUANTIZATIONS, ExportConfig

PENDING_OUTPUT_DIR = "/pending"  # create_run gives the run its folder


def start_export(artifact: Artifact, user, quantization: str, corpus: Dataset | None) -> Run:
    """A queued export run of the checkpoint; ConfigError naming the field when the request is wrong."""
    if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.metadata.get("task") == "classification":
        raise ConfigError("model", "only a causal language model checkpoint is exported")
    config = ExportConfig.from_dict({
        "base_model": str(artifact.absolute_path), "output_dir": PENDING_OUTPUT_DIR, "quantization": quantization,
        "eval_path": str(corpus.absolute_path) if corpus else None, "eval_format": corpus.format if corpus else "txt"})
    inputs = {"model": artifact_output(artifact).as_input(None)}
    if corpus is not None:
        inputs["eval_corpus"] = dataset_output(corpus).as_input(None)
    # int8 quantises on a CPU; only nf4 needs a GPU worker (which refuses it without bitsandbytes).
    queue = "gpu" if quantization == "nf4" else "cpu"
    return create_run(artifact.team, "export", queue, asdict(config), inputs, user)


@login_required
@require_POST
def model_export(request, pk):
    artifact = get_artifact_for_user(request.user, pk)
    try:
        corpus_id = params.integer(request.POST, "eval_corpus")
        corpus = None
        if corpus_id is not None:
            corpus = datasets_for_user(request.user).filter(team=artifact.team, kind=Dataset.Kind.TEXT, pk=corpus_id).first()
            if corpus is None:
                raise ConfigError("eval_corpus", f"no text corpus {corpus_id} in team {artifact.team.name}")
        run = start_export(artifact, request.user, request.POST.get("quantization", "int8"), corpus)
    except ConfigError as exc:  # the form offers only good values: this is a hand-made request
        return params.bad_request(exc)
    return redirect("run-detail", pk=run.pk)


def export_context(artifact: Artifact, user) -> dict:
    """What the model page shows of exports: the form's choices and the exports made of this model."""
    if artifact.metadata.get("task") == "classification":
        return {}
    exports = Artifact.objects.filter(kind=Artifact.Kind.EXPORT, parent_artifacts=artifact).order_by("-pk")
    return {
        "exports": exports,
        "export_runs": Run.objects.filter(stage="export", inputs__model__id=artifact.pk).order_by("-pk")[:5],
        "quantizations": QUANTIZATIONS,
        "corpora": datasets_for_user(user).filter(team=artifact.team, kind=Dataset.Kind.TEXT).order_by("-pk")[:50],
    }

