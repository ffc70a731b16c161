"""Streaming ingest of an uploaded corpus: copy to the data dir, hash, validate every line.

Nothing is kept unless the whole file validates: the file is written to a temporary name and
moved into place only after the last line passed.
"""

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

PREVIEW_CHARS = 2000
SUPPORTED_SUFFIXES = {".txt": "txt", ".jsonl": "jsonl"}


class IngestError(Exception):
    """A problem with an uploaded file, with where it is."""

    def __init__(self, filename: str, message: str, line: int | None = None, field: str = "file"):
        self.filename = filename
        self.line = line
        self.field = field
        self.message = message
        where = f"{filename}, line {line}" if line else filename
        super().__init__(f"{where}: {message}")


@dataclass
class IngestResult:
    path: Path
    format: str
    size_bytes: int
    sha256: str
    n_records: int
    n_lines: int
    preview: str


def detect_format(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise IngestError(filename, f"unsupported file type '{suffix or '(none)'}': upload a .txt or .jsonl corpus")
    return SUPPORTED_SUFFIXES[suffix]


def _lines(chunks: Iterable[bytes]) -> Iterable[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


class _Validator:
    """Counts documents line by line; raises IngestError at the first bad line."""

    def __init__(self, filename: str, fmt: str):
        self.filename = filename
        self.fmt = fmt
        self.n_lines = 0
        self.n_records = 0
        self.preview: list[str] = []
        self.preview_chars = 0
        self._in_document = False

    def feed(self, raw: bytes) -> None:
        self.n_lines += 1
        line_no = self.n_lines
        if self.n_lines == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if b"\x00" in raw:
            raise IngestError(self.filename, "contains NUL bytes: this looks like a binary file, not text", line_no)
        try:
            text = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise IngestError(
                self.filename, f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})", line_no
            ) from None
        if self.fmt == "jsonl":
            self._feed_jsonl(text, line_no)
        else:
            self._feed_txt(text)

    def _feed_txt(self, text: str) -> None:
        if text.strip():
            if not self._in_document:
                self.n_records += 1
                self._in_document = True
            self._keep_preview(text + "\n")
        else:
            self._in_document = False

    def _feed_jsonl(self, text: str, line_no: int) -> None:
        if not text.strip():
            return
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IngestError(self.filename, f"invalid JSON ({exc.msg} at column {exc.colno})", line_no) from None
        if not isinstance(record, dict):
            raise IngestError(self.filename, "each line must be a JSON object", line_no)
        if "text" not in record:
            raise IngestError(self.filename, "missing field 'text'", line_no, field="text")
        if not isinstance(record["text"], str):
            raise IngestError(self.filename, f"field 'text' must be a string, not {type(record['text']).__name__}", line_no, field="text")
        if record["text"].strip():
            self.n_records += 1
            self._keep_preview(record["text"] + "\n\n")

    def _keep_preview(self, text: str) -> None:
        if self.preview_chars < PREVIEW_CHARS:
            self.preview.append(text[: PREVIEW_CHARS - self.preview_chars])
            self.preview_chars += len(self.preview[-1])


def ingest_stream(chunks: Iterable[bytes], filename: str, dest_dir: Path, max_bytes: int) -> IngestResult:
    """Write `chunks` under `dest_dir`, validating as it streams. Memory stays flat whatever the size."""
    fmt = detect_format(filename)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final_path = dest_dir / f"{uuid.uuid4().hex}{Path(filename).suffix.lower()}"
    tmp_path = final_path.with_suffix(final_path.suffix + ".part")
    digest = hashlib.sha256()
    validator = _Validator(filename, fmt)
    size = 0

    def counted(source: Iterable[bytes], out: BinaryIO) -> Iterable[bytes]:
        nonlocal size
        for chunk in source:
            size += len(chunk)
            if size > max_bytes:
                raise IngestError(filename, f"is larger than the limit of {max_bytes} bytes")
            digest.update(chunk)
            out.write(chunk)
            yield chunk

    try:
        with open(tmp_path, "wb") as out:
            for raw_line in _lines(counted(chunks, out)):
                validator.feed(raw_line)
        if size == 0:
            raise IngestError(filename, "is empty")
        if validator.n_records == 0:
            raise IngestError(filename, "contains no text documents")
        os.replace(tmp_path, final_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return IngestResult(
        path=final_path,
        format=fmt,
        size_bytes=size,
        sha256=digest.hexdigest(),
        n_records=validator.n_records,
        n_lines=validator.n_lines,
        preview="".join(validator.preview),
    )
