"""Corpus workflows."""

from pathlib import Path
from typing import Iterable

from django.conf import settings
from django.db import transaction

from lab.accounts.models import Team
from lab.corpora.ingest import IngestResult, ingest_stream
from lab.corpora.models import Corpus


def create_corpus_from_chunks(team: Team, user, name: str, filename: str, chunks: Iterable[bytes]) -> Corpus:
    """Validate and store an uploaded corpus. Raises IngestError; then nothing is left behind."""
    dest_dir = settings.LAB_DATA_DIR / "corpora" / str(team.pk)
    result: IngestResult = ingest_stream(chunks, filename, dest_dir, settings.LAB_UPLOAD_MAX_BYTES)
    try:
        with transaction.atomic():
            return Corpus.objects.create(
                team=team,
                name=name or Path(filename).stem,
                format=result.format,
                path=str(result.path.relative_to(settings.LAB_DATA_DIR)),
                size_bytes=result.size_bytes,
                sha256=result.sha256,
                n_documents=result.n_documents,
                n_lines=result.n_lines,
                preview=result.preview,
                created_by=user,
            )
    except Exception:
        result.path.unlink(missing_ok=True)
        raise


def create_corpus_from_path(team: Team, user, path: Path, name: str = "") -> Corpus:
    def chunks():
        with open(path, "rb") as f:
            while block := f.read(1024 * 1024):
                yield block

    return create_corpus_from_chunks(team, user, name, path.name, chunks())
