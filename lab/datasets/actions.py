"""Dataset workflows."""

from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction

from lab.accounts.models import Team
from lab.datasets.ingest import IngestResult, ingest_stream, stored_suffix
from lab.datasets.models import Dataset
from lab.runs.models import Run
from training.config import ConfigError


def create_dataset_from_chunks(
    team: Team, user, name: str, filename: str, chunks: Iterable[bytes], kind: str | None = None
) -> tuple[Dataset, bool]:
    """Validate and store an uploaded dataset; `kind` overrides detection. Returns (dataset, created):
    when the team already has a dataset of the same bytes, that one, and no second copy is kept.
    Raises IngestError, and then nothing is left behind."""
    dest_dir = settings.LAB_DATA_DIR / "datasets" / str(team.pk)
    result: IngestResult = ingest_stream(chunks, filename, dest_dir, settings.LAB_UPLOAD_MAX_BYTES, kind)
    try:
        with transaction.atomic():
            # Without the lock, two uploads of the same bytes at once would both miss each other.
            Team.objects.select_for_update().get(pk=team.pk)
            existing = Dataset.objects.for_team(team).filter(sha256=result.sha256).first()
            if existing is None:
                return _dataset_from_ingest(team, user, name or _name_of(filename), result), True
    except Exception:
        result.path.unlink(missing_ok=True)
        raise
    result.path.unlink()
    return existing, False


def _name_of(filename: str) -> str:
    """`letters.tar.gz` → `letters`."""
    base = Path(filename).name
    return base[: len(base) - len(stored_suffix(base))] or base


def _dataset_from_ingest(team: Team, user, name: str, result: IngestResult) -> Dataset:
    return Dataset.objects.create(
        team=team,
        name=name,
        kind=result.kind,
        format=result.format,
        path=str(result.path.relative_to(settings.LAB_DATA_DIR)),
        size_bytes=result.size_bytes,
        sha256=result.sha256,
        n_records=result.n_records,
        stats=result.stats,
        created_by=user,
    )


def create_dataset_from_path(team: Team, user, path: Path, name: str = "", kind: str | None = None) -> Dataset:
    """A dataset from a file on this machine; the team's existing one when it already has these bytes."""
    return create_dataset_from_chunks(team, user, name, path.name, file_chunks(path), kind)[0]


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(1024 * 1024):
            yield block


def delete_dataset(dataset: Dataset) -> None:
    """Delete the row, then its file once that is committed: a rollback keeps both, and a crash in
    between leaves at worst a file no row names, never a row without its file. Runs that used the
    dataset keep its id and sha256 in their inputs. Raises ConfigError while an active run reads it."""
    path = dataset.absolute_path
    with transaction.atomic():
        if run := active_run_reading(dataset):
            raise ConfigError("dataset", f"run {run.pk} is {run.status} and reads it: wait for it or cancel it first")
        dataset.delete()
        transaction.on_commit(lambda: path.unlink(missing_ok=True))


def active_run_reading(dataset: Dataset) -> Run | None:
    for run in Run.objects.for_team(dataset.team).active():
        if any(used.get("kind") == "dataset" and used.get("id") == dataset.pk for _, used in run.frozen_inputs()):
            return run
    return None
