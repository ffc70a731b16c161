"""Dataset workflows."""

from pathlib import Path
from typing import Iterable

from django.conf import settings
from django.db import transaction

from lab.accounts.models import Team
from lab.datasets.ingest import IngestResult, ingest_stream
from lab.datasets.models import Dataset


def create_dataset_from_chunks(
    team: Team, user, name: str, filename: str, chunks: Iterable[bytes], kind: str | None = None
) -> Dataset:
    """Validate and store an uploaded dataset; `kind` overrides detection. Raises IngestError, and
    then nothing is left behind."""
    dest_dir = settings.LAB_DATA_DIR / "datasets" / str(team.pk)
    result: IngestResult = ingest_stream(chunks, filename, dest_dir, settings.LAB_UPLOAD_MAX_BYTES, kind)
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                team=team,
                name=name or Path(filename).stem,
                kind=result.kind,
                format=result.format,
                path=str(result.path.relative_to(settings.LAB_DATA_DIR)),
                size_bytes=result.size_bytes,
                sha256=result.sha256,
                n_records=result.n_records,
                stats=result.stats,
                created_by=user,
            )
    except Exception:
        result.path.unlink(missing_ok=True)
        raise


def create_dataset_from_path(
    team: Team, user, path: Path, name: str = "", kind: str | None = None, filename: str | None = None
) -> Dataset:
    """`filename`, the name the user gave the file, when `path` is not it (an assembled upload)."""

    def chunks():
        with open(path, "rb") as f:
            while block := f.read(1024 * 1024):
                yield block

    return create_dataset_from_chunks(team, user, name, filename or path.name, chunks(), kind)
