"""Registering what a run produced: tokenizers, checkpoints, evaluations… as Artifacts, with their lineage
and hash; an output another app keeps (a cleaned corpus: the datasets app; judgements: feedback) goes
to the registrar that app adds. Called as the run's events are stored (Run.store_events); the worker
only relays them."""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from lab.runs.models import Artifact, Run
from training.corpus import file_sha256
from training.stages import OUTPUTS

# The file whose hash identifies a folder artifact: the weights of a checkpoint.
IDENTITY_FILES = ("model.safetensors", "model.int8.safetensors", "tokenizer.json")


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


REGISTRARS: dict[str, Callable[[Run, dict], object]] = {}
"""Output kind → the registrar of the lab app that stores it (an Output's `registered_by`), added by
that app when it is ready (datasets: a cleaned corpus becomes dataset versions; feedback: a judge's
judgements become its votes). Runs never import the apps that build on them."""


def register_output(run: Run, event: dict) -> object:
    """The row(s) of a stage's output: what its declaration (training/stages.py) says it becomes."""
    output = OUTPUTS.get(event["kind"])
    if output is not None and output.registered_by:
        if event["kind"] not in REGISTRARS:
            raise LookupError(f"no registrar for {event['kind']} outputs: is the {output.registered_by} app installed?")
        return REGISTRARS[event["kind"]](run, event)
    return register_artifact(run, event)


def register_artifact(run: Run, event: dict) -> Artifact:
    path = Path(event["path"]).resolve()
    stage_label = run.cell.display_title if run.cell else run.stage
    artifact = Artifact.objects.create(
        team=run.team,
        run=run,
        kind=event["kind"],
        name=f"{stage_label} · run {run.pk}" + (f" · step {event['step']}" if event.get("step") else ""),
        path=str(path.relative_to(settings.LAB_DATA_DIR)),
        sha256=file_sha256(_identity_file(path)),
        size_bytes=_size(path),
        metadata=event.get("metadata", {}),
    )
    for _, used in run.frozen_inputs():
        if used["kind"] == "artifact":
            artifact.parent_artifacts.add(used["id"])
        elif used["kind"] == "dataset":
            artifact.parent_datasets.add(used["id"])
    return artifact
