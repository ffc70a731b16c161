"""Registering what a run produced (tokenizers, checkpoints) as Artifacts with lineage and hashes."""

import hashlib
from pathlib import Path

from django.conf import settings

from lab.runs.models import Artifact, Run

# The file whose hash identifies a folder artifact: the weights of a checkpoint.
IDENTITY_FILES = ("model.safetensors", "tokenizer.json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _identity_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in IDENTITY_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path} holds none of {', '.join(IDENTITY_FILES)}")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def register_artifact(run: Run, event: dict) -> Artifact:
    path = Path(event["path"]).resolve()
    stage_label = run.cell.display_title if run.cell else run.stage
    artifact = Artifact.objects.create(
        team=run.team,
        run=run,
        kind=event["kind"],
        name=f"{stage_label} · run {run.pk}" + (f" · step {event['step']}" if event.get("step") else ""),
        path=str(path.relative_to(settings.LAB_DATA_DIR)),
        sha256=sha256_file(_identity_file(path)),
        size_bytes=_size(path),
        metadata=event.get("metadata", {}),
    )
    for used in run.inputs.values():
        if used["kind"] == "artifact":
            artifact.parent_artifacts.add(used["id"])
        elif used["kind"] == "corpus":
            artifact.parent_datasets.add(used["id"])
    return artifact
