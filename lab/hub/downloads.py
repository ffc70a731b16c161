"""Downloads of artifacts: a file as is, a checkpoint folder as a zip streamed while it is written."""

import zipfile
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, StreamingHttpResponse

from lab.access import get_artifact_for_user
from lab.runs.models import Artifact
from training.model_files import not_safetensors


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
