"""Resumable uploads: a file sent in chunks at known offsets, then ingested as a dataset.

The protocol (the REST API's /api/uploads/) follows tus in spirit: create with the file's name and
size; append chunks, each at the offset the server reports; after a dropped connection ask the offset
and go on from there; complete to validate and create the dataset. Nothing but the chunks in flight is
held in memory, and the partial file is removed when the upload completes, fails validation or is
abandoned (see `remove_stale_uploads`).
"""

from collections.abc import Iterator
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lab.accounts.models import Team
from lab.datasets.actions import create_dataset_from_chunks, file_chunks
from lab.datasets.ingest import IngestError
from lab.datasets.models import Dataset, Upload
from training.datasets import DatasetError, detect_format

READ_BLOCK = 1 << 20
STALE_AFTER = timedelta(days=1)


class OffsetMismatch(Exception):
    """A chunk sent for an offset other than the bytes received so far."""

    def __init__(self, expected: int):
        super().__init__(f"this upload has {expected} bytes: send the chunk that starts there")
        self.expected = expected


def start_upload(user, filename: str, size: int) -> Upload:
    """Refuse what can be refused before a byte is sent: an unknown file type, a size over the limit."""
    try:
        detect_format(filename)
    except DatasetError as e:
        raise IngestError(filename, e.message) from None
    if size <= 0:
        raise IngestError(filename, "is empty")
    if size > settings.LAB_UPLOAD_MAX_BYTES:
        raise IngestError(filename, f"is larger than the limit of {settings.LAB_UPLOAD_MAX_BYTES} bytes")
    upload = Upload.objects.create(user=user, filename=filename, size=size)
    upload.part_path.parent.mkdir(parents=True, exist_ok=True)
    upload.part_path.touch()
    return upload


def append_chunk(upload: Upload, offset: int, stream: BinaryIO | None) -> Upload:
    """Append the request body at `offset`; two requests for one upload never write at once. An empty
    body (DRF's request.stream is None then) appends nothing."""
    with transaction.atomic():
        upload = Upload.objects.select_for_update().get(pk=upload.pk)
        if offset != upload.received:
            raise OffsetMismatch(upload.received)
        written = 0
        with open(upload.part_path, "r+b") as part:
            part.seek(offset)
            part.truncate()  # drop whatever a broken earlier request left past `received`
            for block in _blocks(stream):
                written += len(block)
                if offset + written > upload.size:
                    raise IngestError(upload.filename, f"more bytes than the {upload.size} announced")
                part.write(block)
        upload.received = offset + written
        upload.save(update_fields=["received"])
    return upload


def complete_upload(upload: Upload, team: Team, name: str = "", kind: str | None = None) -> tuple[Dataset, bool]:
    """Validate the whole file and create the dataset: (dataset, created), the team's existing one
    when it already has these bytes. The upload is gone afterwards either way."""
    if upload.received != upload.size:
        raise IngestError(upload.filename, f"only {upload.received} of {upload.size} bytes arrived: send the rest first")
    try:
        return create_dataset_from_chunks(team, upload.user, name, upload.filename, file_chunks(upload.part_path), kind)
    finally:
        discard_upload(upload)


def discard_upload(upload: Upload) -> None:
    upload.part_path.unlink(missing_ok=True)
    upload.delete()


def remove_stale_uploads(now=None) -> int:
    """Uploads nobody touched for a day: the browser that sent them is not coming back."""
    stale = Upload.objects.filter(created_at__lt=(now or timezone.now()) - STALE_AFTER)
    count = 0
    for upload in stale:
        discard_upload(upload)
        count += 1
    return count


def _blocks(stream: BinaryIO | None) -> Iterator[bytes]:
    while stream is not None and (block := stream.read(READ_BLOCK)):
        yield block
