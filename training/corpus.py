"""Streaming readers for text corpora. No torch: the web process uses them to validate uploads.

Corpora can be far larger than memory, so every reader here walks the file line by line and holds at
most one document at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from training.config import CORPUS_FORMATS, ConfigError

# A txt file without blank lines would otherwise be one document as large as the file. Past this
# size a document is cut at the next line boundary, so memory stays bounded whatever the file holds.
MAX_DOCUMENT_CHARS = 1_000_000


class CorpusError(ConfigError):
    """A corpus the stages cannot read: reported on `corpus_path`, with the line when known."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__("corpus_path", f"{where}: {message}")
        self.path = str(path)
        self.line = line
        self.reason = message


def iter_documents(path: str | Path, fmt: str) -> Iterator[str]:
    """Yield the corpus's non-empty documents, in file order.

    `txt`: documents are separated by blank (whitespace-only) lines and keep their inner newlines.
    `jsonl`: one JSON object a line with a string `text`; blank lines are skipped.
    Raises CorpusError (with the 1-based line) for bad UTF-8, bad JSON or a missing or non-string
    `text`, and at the end when the corpus holds no text at all.
    """
    if fmt not in CORPUS_FORMATS:
        choices = ", ".join(CORPUS_FORMATS)
        raise ConfigError("corpus_format", f"must be one of {choices}, not {fmt!r}")
    p = Path(path)
    if not p.is_file():
        raise CorpusError(p, None, "no such file")
    reader = _iter_txt if fmt == "txt" else _iter_jsonl
    empty = True
    for doc in reader(p):
        empty = False
        yield doc
    if empty:
        raise CorpusError(p, None, "the corpus holds no text")


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, line without newline); each line is decoded alone, so a bad byte has a line."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                where = f"byte {raw[e.start]:#04x} at column {e.start + 1}"
                raise CorpusError(path, number, f"not valid UTF-8 ({where})") from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark is not text
            yield number, line.rstrip("\r\n")


def _iter_txt(path: Path) -> Iterator[str]:
    lines: list[str] = []
    size = 0
    for _, line in _iter_lines(path):
        if line.strip():
            lines.append(line)
            size += len(line) + 1
            if size < MAX_DOCUMENT_CHARS:
                continue
        if lines:
            yield "\n".join(lines)
            lines, size = [], 0
    if lines:
        yield "\n".join(lines)


def _iter_jsonl(path: Path) -> Iterator[str]:
    for number, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            reason = f"not valid JSON ({e.msg} at column {e.colno})"
            raise CorpusError(path, number, reason) from None
        if not isinstance(record, dict):
            raise CorpusError(path, number, f"expected a JSON object, got {type(record).__name__}")
        if "text" not in record:
            raise CorpusError(path, number, 'the object has no "text" key')
        text = record["text"]
        if not isinstance(text, str):
            raise CorpusError(path, number, f'"text" must be a string, not {type(text).__name__}')
        if text.strip():
            yield text


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
