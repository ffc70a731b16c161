"""Registering what a run produced: tokenizers and checkpoints as Artifacts, cleaned corpora as new
versions of the dataset they came from, each with its lineage and hash. Called as the run's events
are stored (Run.store_events); the worker only relays them."""

from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db.models import Q

from lab.datasets.models import Dataset
from lab.runs.models import Artifact, Run
from training.clean_output import VALIDATION_FILE
from training.corpus import file_sha256
from training.datasets import describe, detect_format
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
that app when it is ready (the feedback app: a judge's judgements become its votes). Runs never
import the apps that build on them."""


def register_output(run: Run, event: dict) -> object:
    """The row(s) of a stage's output: what its declaration (training/stages.py) says it becomes."""
    output = OUTPUTS.get(event["kind"])
    if output is not None and output.registered_by:
        if event["kind"] not in REGISTRARS:
            raise LookupError(f"no registrar for {event['kind']} outputs: is the {output.registered_by} app installed?")
        return REGISTRARS[event["kind"]](run, event)
    if output is not None and output.dataset:
        return register_dataset_version(run, event)
    return register_artifact(run, event)


def register_dataset_version(run: Run, event: dict) -> Dataset:
    """A cleaned corpus becomes a text dataset whose parent is the corpus the run read, and its
    validation split, when it holds documents, a text dataset of its own beside it (the held-out text
    an evaluate cell measures perplexity on). The train split's row is returned."""
    train_path = Path(event["path"]).resolve()
    report = event.get("metadata", {})
    parent_id = next((used["id"] for _, used in run.frozen_inputs() if used["kind"] == "dataset"), None)
    parent = Dataset.objects.filter(pk=parent_id).first()
    name = f"{parent.name if parent else 'corpus'} · clean run {run.pk}"
    train = _text_dataset(run, train_path, parent, name, clean_summary(report))
    validation = report.get("split", {}).get("validation", 0)
    if validation:
        # The file name comes from the report; only its name is taken, so it stays beside the train split.
        path = train_path.with_name(Path(report.get("files", {}).get("validation", VALIDATION_FILE)).name)
        _text_dataset(run, path, parent, f"{name} · validation",
                      f"The validation split of clean run {run.pk}: {validation} documents held out from its train "
                      "split (chosen by their text and the seed), for measuring perplexity on text no model trained on.")
    return train


def _text_dataset(run: Run, path: Path, parent: Dataset | None, name: str, description: str) -> Dataset:
    described = describe(path, Dataset.Kind.TEXT)
    described.raise_for_errors()
    stats = described.to_dict()
    del stats["errors"], stats["stopped_early"]
    return Dataset.objects.create(
        team=run.team,
        name=name,
        description=description,
        parent=parent,
        source_run=run,
        kind=Dataset.Kind.TEXT,
        format=detect_format(path.name),
        path=str(path.relative_to(settings.LAB_DATA_DIR)),
        size_bytes=path.stat().st_size,
        sha256=file_sha256(path),
        n_records=described.rows,
        stats=stats,
        created_by=run.created_by,
    )


def clean_summary(report: dict) -> str:
    removed = ", ".join(f"{n} {rule.replace('_', ' ')}" for rule, n in report.get("removed", {}).items() if n)
    split = report.get("split", {})
    return (f"Kept {report.get('documents_kept', '?')} of {report.get('documents_in', '?')} documents"
            f" (removed: {removed or 'none'}). This is the train split ({split.get('train', '?')} documents); "
            f"{split.get('validation', 0)} went to the validation split, a dataset of its own.")


def clean_split(run: Run, split: str) -> Dataset | None:
    """The dataset a clean run registered for `split`: "validation" is the one of its validation file,
    "train" the other (the version of the corpus that the cells below read)."""
    made = Dataset.objects.filter(source_run=run, kind=Dataset.Kind.TEXT)
    held_out = Q(path__endswith=VALIDATION_FILE)
    return (made.filter(held_out) if split == "validation" else made.exclude(held_out)).first()


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
