"""File formats to raw records: `.txt`, `.jsonl`, `.csv`, `.tsv` and `.parquet`.

A raw record is a text document (str) or an object (dict) with its line; what kind of record it is
and whether its fields are right is decided later (kinds.py). A record that cannot be read is
yielded as a DatasetError, so validation can go on to the next one; a file that cannot be read at
all raises one.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from training.datasets.errors import DatasetError, json_type
from training.datasets.textio import Line

FORMATS = {
    ".txt": "txt",
    ".jsonl": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".zip": "zip",
    ".tar.gz": "tar",
    ".tgz": "tar",
}
PARQUET_BATCH_ROWS = 1024
"""Rows decoded at a time from a Parquet file; memory holds one batch."""

# A txt file without blank lines would otherwise be one document as large as the file. Past this
# size a document is cut at the next line boundary, so memory stays bounded whatever the file holds.
MAX_DOCUMENT_CHARS = 1_000_000


class Raw(NamedTuple):
    value: str | dict[str, Any]
    """A text document, or a record's fields."""
    file: str
    """The name errors show: the upload's name, or `archive.zip:member`."""
    line: int | None
    """1-based line where the record starts (row number for Parquet)."""
    resume: int | None
    """Where reading can restart to reach this record again (byte offset, or Parquet row index)."""


def detect_format(name: str | Path) -> str:
    """The format of a file, from its name: one of FORMATS' values."""
    lower = str(name).lower()
    for suffix, fmt in FORMATS.items():
        if lower.endswith(suffix):
            return fmt
    known = ", ".join(FORMATS)
    raise DatasetError(f"unsupported file type (supported: {known})", file=Path(name).name)


def read_txt(lines: Iterable[Line], file: str) -> Iterator[Raw | DatasetError]:
    """Documents separated by blank lines; one longer than MAX_DOCUMENT_CHARS is cut at a line."""
    doc: list[str] = []
    first: Line | None = None
    size = 0
    for line in lines:
        if line.problem:
            yield DatasetError(line.problem, file=file, line=line.number)
            continue
        if line.text.strip():
            if not doc:
                first = line
            doc.append(line.text)
            size += len(line.text) + 1
            if size < MAX_DOCUMENT_CHARS:
                continue
        if doc:
            assert first is not None
            yield Raw("\n".join(doc), file, first.number, first.offset)
            doc, size = [], 0
    if doc:
        assert first is not None
        yield Raw("\n".join(doc), file, first.number, first.offset)


def read_document(lines: Iterable[Line], file: str) -> Iterator[Raw | DatasetError]:
    """A whole file as one document, blank lines kept (an archive member), cut like read_txt."""
    doc: list[str] = []
    first = 1
    size = 0
    for line in lines:
        if line.problem:
            yield DatasetError(line.problem, file=file, line=line.number)
            continue
        if not doc:
            first = line.number
        doc.append(line.text)
        size += len(line.text) + 1
        if size >= MAX_DOCUMENT_CHARS:
            yield from _document(doc, file, first)
            doc, size = [], 0
    yield from _document(doc, file, first)


def _document(doc: list[str], file: str, line: int) -> Iterator[Raw]:
    text = "\n".join(doc).strip("\n")
    if text.strip():
        yield Raw(text, file, line, None)


def read_jsonl(lines: Iterable[Line], file: str) -> Iterator[Raw | DatasetError]:
    """One JSON object a line; blank lines are skipped."""
    for line in lines:
        if line.problem:
            yield DatasetError(line.problem, file=file, line=line.number)
            continue
        if not line.text.strip():
            continue
        try:
            value = json.loads(line.text)
        except json.JSONDecodeError as e:
            reason = f"not valid JSON ({e.msg} at column {e.colno})"
            if line.number == 1 and line.text.strip() == "[":
                reason += "; this looks like a JSON array, but each line must hold one object"
            yield DatasetError(reason, file=file, line=line.number)
            continue
        if not isinstance(value, dict):
            reason = f"each line must be a JSON object, not {json_type(value)}"
            yield DatasetError(reason, file=file, line=line.number)
            continue
        yield Raw(value, file, line.number, line.offset)


def read_delimited(
    lines: Iterable[Line], file: str, fmt: str, header: list[str] | None = None
) -> Iterator[Raw | DatasetError]:
    """CSV (quoted as Excel writes it) or TSV (no quoting: a field holds no tab or newline), the
    first row naming the columns. `header` is given when reading resumes past it."""
    feed = _Feed(lines)
    rows = _csv_reader(feed, fmt)
    if header is None:
        header = _read_header(rows, feed, file)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as e:
            raise DatasetError(
                f"not valid {fmt.upper()} ({e})", file=file, line=feed.last
            ) from None
        first = feed.take_first()
        yield from _undecodable(feed, file)
        if not row or first is None:
            continue
        if len(row) != len(header):
            reason = f"has {len(row)} columns, but the header row has {len(header)}"
            yield DatasetError(reason, file=file, line=first.number)
            continue
        yield Raw(dict(zip(header, row, strict=True)), file, first.number, first.offset)
    yield from _undecodable(feed, file)


def read_delimited_header(lines: Iterable[Line], file: str, fmt: str) -> list[str]:
    """Only the header row, for resuming past it."""
    feed = _Feed(lines)
    return _read_header(_csv_reader(feed, fmt), feed, file)


def _csv_reader(feed: _Feed, fmt: str) -> Iterator[list[str]]:
    if fmt == "tsv":
        return csv.reader(feed, delimiter="\t", quoting=csv.QUOTE_NONE)
    return csv.reader(feed)


def _undecodable(feed: _Feed, file: str) -> Iterator[DatasetError]:
    for line in feed.take_problems():
        yield DatasetError(line.problem or "", file=file, line=line.number)


def _read_header(rows: Iterator[list[str]], feed: _Feed, file: str) -> list[str]:
    try:
        header = [name.strip() for name in next(rows, [])]
    except csv.Error as e:
        raise DatasetError(f"the header row is not valid ({e})", file=file, line=1) from None
    if feed.take_problems():
        raise DatasetError("the header row is not valid text", file=file, line=1)
    feed.take_first()
    if not header:
        raise DatasetError("holds no header row naming the columns", file=file, line=1)
    if "" in header:
        raise DatasetError("the header row has an empty column name", file=file, line=1)
    doubled = sorted({name for name in header if header.count(name) > 1})
    if doubled:
        raise DatasetError(f"the header row names {', '.join(doubled)} twice", file=file, line=1)
    return header


class _Feed:
    """Lines for the csv module, remembering where each row starts and which lines were bad."""

    def __init__(self, lines: Iterable[Line]) -> None:
        self._lines = iter(lines)
        self._first: Line | None = None
        self._problems: list[Line] = []
        self.last: int | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.last = line.number
        if self._first is None:
            self._first = line
        if line.problem:
            self._problems.append(line)
        # The csv module needs the line ending to keep a newline inside a quoted field.
        return line.text + "\n"

    def take_first(self) -> Line | None:
        first, self._first = self._first, None
        return first

    def take_problems(self) -> list[Line]:
        problems, self._problems = self._problems, []
        return problems


def read_parquet(path: Path, file: str, start_row: int = 0) -> Iterator[Raw | DatasetError]:
    """Rows in batches of PARQUET_BATCH_ROWS, from row `start_row` (0-based); `line` is 1-based."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            "reading Parquet needs pyarrow, which is not installed", file=file
        ) from None
    if path.stat().st_size == 0:
        raise DatasetError("the file is empty", file=file)
    try:
        parquet = pq.ParquetFile(path)
        groups, row = _row_groups_from(parquet.metadata, start_row)
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=groups):
            for value in batch.to_pylist():
                if row >= start_row:
                    yield Raw(value, file, row + 1, row)
                row += 1
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"not a readable Parquet file ({e})", file=file) from None


def _row_groups_from(metadata: Any, start_row: int) -> tuple[list[int], int]:
    """The row groups from the one holding `start_row` on, and the index of their first row."""
    first_row = 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if first_row + rows > start_row:
            return list(range(group, metadata.num_row_groups)), first_row
        first_row += rows
    return [], first_row
