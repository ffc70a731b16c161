import json
import zipfile
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lab import params
from lab.access import artifacts_for_user, get_artifact_for_user, get_run_for_user
from lab.datasets.models import Dataset
from lab.runs.actions import cancel_run, resume_run
from lab.runs.models import Artifact, Run
from lab.runs.streaming import run_state
from lab.runs.tokenizers import describe_tokenizer, encode_with_artifact
from training.config import ConfigError
from training.model_files import not_safetensors


def deleted_inputs(run: Run) -> list[str]:
    """Keys of the run's dataset inputs whose dataset was deleted since: the run keeps the record, not the data."""
    used = [(key, value["id"]) for key, value in run.frozen_inputs() if value.get("kind") == "dataset"]
    present = set(Dataset.objects.filter(team=run.team_id, pk__in=[pk for _, pk in used]).values_list("pk", flat=True))
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
def run_resume(request, pk):
    run = get_run_for_user(request.user, pk)
    try:
        resume_run(run)
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


class _ZipSink:
    """A write-only file for zipfile that hands out what was written, so the archive streams."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.offset = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


TRAINING_STATE = ("optimizer.pt", "scheduler.pt", "rng_state*.pth", "training_args.bin")
"""What a checkpoint keeps only to go on training here: the optimizer's moments (twice the weights'
size with AdamW), the schedule, the RNGs, the Trainer's pickled arguments."""


def training_state_files(folder: Path) -> list[Path]:
    return sorted(path for pattern in TRAINING_STATE for path in folder.rglob(pattern) if path.is_file())


def _stream_zip(folder: Path, root_name: str, leave_out: list[Path]):
    sink = _ZipSink()
    # Weights do not compress; storing them keeps the download as fast as the disk.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path not in leave_out:
                with open(path, "rb") as src, archive.open(f"{root_name}/{path.relative_to(folder)}", "w", force_zip64=True) as dst:
                    while block := src.read(1024 * 1024):
                        dst.write(block)
                        yield sink.drain()
        yield sink.drain()
    yield sink.drain()


@login_required
def artifact_download(request, pk):
    return artifact_response(get_artifact_for_user(request.user, pk), request.GET.get("training_state") == "1")


def artifact_response(artifact: Artifact, training_state: bool = False):
    """The artifact as a download: a file as is, a checkpoint folder as a streamed zip. The zip is the
    model, what `from_pretrained` loads and another lab takes as an upload, with no pickled file in
    it, unless `training_state` asks for the files that resuming needs as well (the lab's own; any
    other pickle, such as a registered folder's pytorch_model.bin, is never served)."""
    path = artifact.absolute_path
    if not path.exists():
        raise Http404("the files of this artifact are gone")
    if path.is_file():
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)
    name = f"{artifact.kind}-{artifact.pk}-{path.name}"
    kept_state = training_state_files(path) if training_state else []
    leave_out = [file for file in not_safetensors(path) if file not in kept_state]
    response = StreamingHttpResponse(_stream_zip(path, name, leave_out), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


@login_required
def tokenizer_encode(request, pk):
    """The text's tokens under the artifact and, with `compare=<artifact id>`, under a second
    tokenizer of the same team, so both colourings always show the same text."""
    artifact = _tokenizer_for_user(request.user, pk)
    text = request.GET.get("text", "")[:5000]
    result = encode_with_artifact(artifact, text)
    if compare_id := request.GET.get("compare"):
        other = _comparison_for_user(request.user, artifact, compare_id)
        result["compare"] = encode_with_artifact(other, text)
    return JsonResponse(result)


@login_required
def tokenizer_compare_options(request, pk):
    """The team's other tokenizers, for the tokenizer cell's "compare with" list."""
    artifact = _tokenizer_for_user(request.user, pk)
    others = artifacts_for_user(request.user).filter(team=artifact.team, kind=Artifact.Kind.TOKENIZER)
    usable = [other for other in others.exclude(pk=artifact.pk) if other.absolute_path.is_file()]
    return JsonResponse({"tokenizers": [describe_tokenizer(other) for other in usable]})


def _tokenizer_for_user(user, pk) -> Artifact:
    artifact = get_artifact_for_user(user, pk)
    if artifact.kind != Artifact.Kind.TOKENIZER:
        raise Http404("not a tokenizer")
    if not artifact.absolute_path.is_file():
        raise Http404("the files of this tokenizer are gone")
    return artifact


def _comparison_for_user(user, artifact: Artifact, pk) -> Artifact:
    other = _tokenizer_for_user(user, pk)
    if other.team_id != artifact.team_id:  # a user of two teams still compares within one
        raise Http404("not found")
    return other
