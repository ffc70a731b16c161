"""A clean run's output, registered as datasets: its train split becomes a new version of the corpus
the run read, its validation split a text dataset of its own. The datasets app adds this registrar
for `corpus` outputs (training/stages.py CORPUS) when it is ready: runs never import datasets."""

from pathlib import Path

from django.conf import settings
from django.db.models import Q

from lab.datasets.models import Dataset
from lab.runs.models import Run
from training.clean_output import VALIDATION_FILE
from training.corpus import file_sha256
from training.datasets import describe, detect_format


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
