"""Ingest of an uploaded dataset: stream it to disk (size limit, sha256), then validate and describe
every record with `training.datasets`. Nothing is kept unless the whole file validates: the file is
written under a temporary name and moved into place only after its last record passed."""

import hashlib
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from training.datasets import DatasetError, describe, detect_format


class IngestError(Exception):
    """A problem with an uploaded file, with where it is."""

    def __init__(self, filename: str, message: str, line: int | None = None, field: str = "file"):
        self.filename = filename
        self.line = line
        self.field = field
        self.message = message
        where = f"{filename}, line {line}" if line else filename
        super().__init__(f"{where}: {message}")

    @classmethod
    def from_dataset_error(cls, filename: str, error: DatasetError, more: int = 0) -> "IngestError":
        message = error.message
        if error.field:
            message = f'field "{error.field}": {message}'
        if more:
            message += f" (and {more} more errors)"
        return cls(error.file or filename, message, error.line, field="file")


@dataclass
class IngestResult:
    path: Path
    format: str
    kind: str
    size_bytes: int
    sha256: str
    n_records: int
    stats: dict


def stored_suffix(filename: str) -> str:
    """The suffix the stored copy keeps, since readers tell the format by it."""
    name = filename.lower()
    return ".tar.gz" if name.endswith(".tar.gz") else Path(name).suffix


def ingest_stream(
    chunks: Iterable[bytes], filename: str, dest_dir: Path, max_bytes: int, kind: str | None = None
) -> IngestResult:
    """Write `chunks` under `dest_dir`, then validate; `kind` overrides detection. Memory stays flat."""
    try:
        fmt = detect_format(filename)
    except DatasetError as e:
        raise IngestError(filename, e.message) from None
    dest_dir.mkdir(parents=True, exist_ok=True)
    final_path = dest_dir / f"{uuid.uuid4().hex}{stored_suffix(filename)}"
    tmp_path = dest_dir / f".{final_path.name}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp_path, "wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise IngestError(filename, f"is larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise IngestError(filename, "is empty")
        try:
            description = describe(tmp_path, kind, name=filename)
        except DatasetError as e:
            raise IngestError.from_dataset_error(filename, e) from None
        if description.errors:
            more = len(description.errors) - 1
            raise IngestError.from_dataset_error(filename, description.errors[0], more)
        os.replace(tmp_path, final_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    stats = description.to_dict()
    del stats["errors"], stats["stopped_early"]
    return IngestResult(final_path, fmt, description.kind, size, digest.hexdigest(), description.rows, stats)
