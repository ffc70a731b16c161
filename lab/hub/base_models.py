"""Base models a team brings: an archive of a Hugging Face folder uploaded in the browser or the API,
or a folder on the workers that an admin registers. Either becomes a checkpoint Artifact with no run,
which any base-model cell can pick. The folder is checked (safetensors only, every file it names inside
it, no links, no remote code, a config, a tokenizer) before anything is stored; a refused archive
leaves nothing behind. Pickled files beside the safetensors are dropped: nothing ever loads or serves them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction

from lab.accounts.models import Team
from lab.datasets.ingest import IngestError
from lab.datasets.models import Upload
from lab.datasets.uploads import discard_upload
from lab.runs.models import Artifact
from training.config import ConfigError
from training.corpus import file_sha256
from training.datasets import ArchiveRefused
from training.datasets.archives import extract_archive
from training.model_files import not_safetensors
from training.model_info import ModelInfo, inspect_model, weight_files

MODEL_ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz")


def register_model_folder(team: Team, path: str | Path, name: str, user=None) -> Artifact:
    """An existing folder (a path the workers and the web share) as the team's base model, in place."""
    folder = Path(path).expanduser().resolve()
    info = _checked(folder)
    return _create(team, folder, name or folder.name, info, "registered path", user)


def import_model_archive(upload: Upload, team: Team, name: str = "") -> Artifact:
    """Unpack an uploaded archive of a model folder under LAB_DATA_DIR/models/ and register it."""
    if upload.received != upload.size:
        raise IngestError(upload.filename, f"only {upload.received} of {upload.size} bytes arrived: send the rest first")
    if not upload.filename.lower().endswith(MODEL_ARCHIVES):
        discard_upload(upload)
        raise IngestError(upload.filename, "a model is uploaded as a .zip or .tar.gz of its Hugging Face folder")
    target = settings.LAB_DATA_DIR / "models" / uuid.uuid4().hex
    target.mkdir(parents=True)
    try:
        extract_archive(upload.part_path, target)
        folder = _model_root(target, upload.filename)
        info = _checked(folder, upload.filename)
        dropped = _drop_pickles(folder)
        default_name = folder.name if folder != target else Path(upload.filename).name.split(".")[0]
        return _create(team, folder, name or default_name, info, "upload", upload.user, dropped)
    except ArchiveRefused as e:
        shutil.rmtree(target, ignore_errors=True)
        raise IngestError(upload.filename, e.message) from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        discard_upload(upload)


def _model_root(extracted: Path, filename: str) -> Path:
    """The folder holding config.json: the archive's top, or its one top-level folder."""
    if (extracted / "config.json").is_file():
        return extracted
    tops = [p for p in extracted.iterdir()]
    if len(tops) == 1 and tops[0].is_dir() and (tops[0] / "config.json").is_file():
        return tops[0]
    raise IngestError(filename, "holds no config.json at its top or in its one top-level folder")


def _drop_pickles(folder: Path) -> list[str]:
    """Remove the files that could run code on load (the checked folder loads from safetensors)."""
    dropped = not_safetensors(folder)
    for path in dropped:
        path.unlink()
    return [str(path.relative_to(folder)) for path in dropped]


def _checked(folder: Path, filename: str | None = None) -> ModelInfo:
    try:
        info = inspect_model(folder)
    except ConfigError as e:
        raise IngestError(filename or str(folder), e.message) from None
    if not info.has_tokenizer:
        raise IngestError(filename or str(folder), "has no tokenizer.json: the lab needs the model's tokenizer beside it")
    return info


def _create(team: Team, folder: Path, name: str, info: ModelInfo, source: str, user, dropped: list[str] = ()) -> Artifact:
    weights = weight_files(folder)
    # Inside the data directory the path is stored relative to it; a registered folder elsewhere, absolute.
    data_dir = settings.LAB_DATA_DIR.resolve()
    path = folder.relative_to(data_dir) if folder.is_relative_to(data_dir) else folder
    with transaction.atomic():
        return Artifact.objects.create(
            team=team, run=None, kind=Artifact.Kind.CHECKPOINT, name=name[:200], path=str(path),
            sha256=file_sha256(weights[0]), size_bytes=info.size_bytes,
            metadata={"source": source, "model": info.to_dict(), "added_by": getattr(user, "username", None),
                      "dropped_files": list(dropped)},
        )
