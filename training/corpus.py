"""Text corpora as the training stages read them: documents, streamed, from any text-dataset format
that `training.datasets` reads. No torch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from training.config import CORPUS_FORMATS, ConfigError
from training.datasets import DatasetError, detect_format, iter_records

FORMAT_SUFFIXES = {"txt": ".txt", "jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv",
                   "parquet": ".parquet", "zip": ".zip", "tar": ".tar.gz"}


class CorpusError(ConfigError):
    """A corpus the stages cannot read: reported on `corpus_path`, with the line when known."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__("corpus_path", f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.reason = message


def iter_documents(path: str | Path, fmt: str) -> Iterator[str]:
    """Yield the corpus's non-empty documents, in file order, streaming.

    Any text-dataset format of `training.datasets`: `txt` (documents separated by blank lines),
    `jsonl`/`parquet`/`csv`/`tsv` records with a string `text`, `zip`/`tar` archives of text files.
    Raises CorpusError (with the 1-based line) for anything unreadable, and at the end when the
    corpus holds no text at all.
    """
    if fmt not in CORPUS_FORMATS:
        choices = ", ".join(CORPUS_FORMATS)
        raise ConfigError("corpus_format", f"must be one of {choices}, not {fmt!r}")
    p = Path(path)
    if not p.is_file():
        raise CorpusError(p, None, "no such file")
    # The readers tell the format by the name; the caller's `fmt` wins over the file's suffix.
    name = p.name if detected_format(p.name) == fmt else f"{p.name}{FORMAT_SUFFIXES[fmt]}"
    empty = True
    try:
        for record in iter_records(p, "text", name=name):
            if record["text"].strip():
                empty = False
                yield record["text"]
    except DatasetError as e:
        where = f'field "{e.field}": ' if e.field else ""
        raise CorpusError(p, e.line, where + e.message) from None
    if empty:
        raise CorpusError(p, None, "the corpus holds no text")


def detected_format(filename: str) -> str | None:
    try:
        return detect_format(filename)
    except DatasetError:
        return None


def iter_batches(documents: Iterator[str], batch_chars: int = 1_000_000) -> Iterator[list[str]]:
    """Documents in lists of about `batch_chars` characters, for the batched Rust encoders."""
    batch: list[str] = []
    size = 0
    for doc in documents:
        batch.append(doc)
        size += len(doc)
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
