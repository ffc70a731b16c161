"""File formats to raw records: `.txt`, `.jsonl`, `.csv`, `.tsv` and `.parquet`.

A raw record is a text document (str) or an object (dict) with its line; what kind of record it is
and whether its fields are right is decided later (kinds.py). A record that cannot be read is
yielded as a DatasetError, so validation can go on to the next one; a file that cannot be read at
all raises one.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from training import json_limits
from training.datasets.errors import DatasetError, json_type
from training.datasets.textio import Block, Line

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
"""The one list of the formats: each file suffix the readers know, and its format."""
FORMAT_NAMES = tuple(dict.fromkeys(FORMATS.values()))
"""What a config's `*_format` field takes: txt, jsonl, csv, tsv, parquet, zip, tar."""
SUFFIXES = {fmt: next(s for s, f in FORMATS.items() if f == fmt) for fmt in FORMAT_NAMES}
"""Each format's first suffix (`tar`: `.tar.gz`): the name a reader is given for a file of it."""
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


def read_txt(items: Iterable[Block | Line], file: str) -> Iterator[Raw | DatasetError]:
    """Documents separated by blank lines; one longer than MAX_DOCUMENT_CHARS is cut at a line.

    Takes lines one by one (iter_lines, the exact path) or many at once (iter_blocks, the fast
    path), and gives the same documents from both: a block is split at its blank lines by one
    regular expression, and only the lines of documents that run on into a neighbouring block
    (or past MAX_DOCUMENT_CHARS) are taken one by one.
    """
    yield from _txt_documents(items, file, located=True)  # type: ignore[misc]  # located: no lists


def read_txt_texts(items: Iterable[Block | Line], file: str) -> Iterator[str | DatasetError]:
    """read_txt's documents as plain strings: without a line number and offset for each, a block's
    documents cost no Python step apiece."""
    for item in _txt_documents(items, file, located=False):
        if isinstance(item, list):
            yield from item
        elif isinstance(item, Raw):
            yield item.value  # type: ignore[misc]  # a text document
        else:
            yield item


def _txt_documents(
    items: Iterable[Block | Line], file: str, *, located: bool
) -> Iterator[Raw | DatasetError | list[str]]:
    document = _Document(file)
    for item in items:
        if isinstance(item, Block):
            yield from _block_documents(item, document, located)
        elif item.problem:
            yield DatasetError(item.problem, file=file, line=item.number)
        elif not item.text or item.text.isspace():
            if raw := document.end():
                yield raw
        elif raw := document.add(item.text, item.number, item.offset):
            yield raw
    if raw := document.end():
        yield raw


# The end of a line and the blank (whitespace-only) lines after it, as far as they go: where a
# document ends. `\s` is what str.isspace() and str.strip() call whitespace, so a line is blank
# here just when it is in the exact path. Captured, so that a split keeps the separators (and the
# positions they give).
_SEPARATOR = re.compile(r"(\n\s*\n)")
_CR_AT_LINE_END = re.compile(r"\r+(?=\n|\Z)")


def _block_documents(
    block: Block, document: _Document, located: bool
) -> Iterator[Raw | list[str]]:
    """The documents of a block. Those between two of its blank-line runs come whole, straight
    from the text: as a Raw each when `located`, else all in one list. The lines before its first
    run and after its last go to `document`, which holds the one running into the neighbouring
    block."""
    text = block.text
    where = _Positions(block)
    parts = _SEPARATOR.split(text)  # text, separator, text, …, separator, text
    if len(parts) == 1:
        yield from document.add_lines(text, 0, where, last=True)
        return
    yield from document.add_lines(parts[0], 0, where, last=False)
    if raw := document.end():
        yield raw
    start = len(parts[0]) + len(parts[1])
    pieces, separators = parts[2:-1:2], parts[3:-1:2]
    # A piece that may be cut is taken line by line, as the exact path takes it.
    cut = bool(pieces) and max(map(len, pieces)) + 1 >= MAX_DOCUMENT_CHARS
    carriage_returns = "\r" in text
    if located or cut:
        for piece, separator in zip(pieces, separators, strict=True):
            if len(piece) + 1 >= MAX_DOCUMENT_CHARS:
                yield from document.add_lines(piece, start, where, last=False)
                if raw := document.end():
                    yield raw
            else:
                number, offset = where.at(start)
                value = _CR_AT_LINE_END.sub("", piece) if carriage_returns else piece
                yield Raw(value, document.file, number, offset)
            start += len(piece) + len(separator)
    elif pieces:
        yield [_CR_AT_LINE_END.sub("", p) for p in pieces] if carriage_returns else pieces
    yield from document.add_lines(parts[-1], len(text) - len(parts[-1]), where, last=True)


class _Document:
    """The document being read line by line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: list[str] = []
        self.size = 0
        self.number = 0
        self.offset: int | None = None

    def add(self, line: str, number: int, offset: int | None) -> Raw | None:
        """Add a line that is not blank; the document, if that made it MAX_DOCUMENT_CHARS long."""
        if not self.lines:
            self.number, self.offset = number, offset
        self.lines.append(line)
        self.size += len(line) + 1
        return self.end() if self.size >= MAX_DOCUMENT_CHARS else None

    def end(self) -> Raw | None:
        """The document so far, if any: a blank line (or the file) ends here."""
        if not self.lines:
            return None
        raw = Raw("\n".join(self.lines), self.file, self.number, self.offset)
        self.lines, self.size = [], 0
        return raw

    def add_lines(self, text: str, start: int, where: _Positions, *, last: bool) -> Iterator[Raw]:
        """Add the lines of `text`, found at `start` in a block. `last`: it runs to the block's
        end, where its final "\\n" ends the last line rather than beginning one more."""
        lines = text.split("\n")
        if last and not lines[-1]:
            lines.pop()
        for line in lines:
            stripped = line.rstrip("\r")
            if not stripped or stripped.isspace():
                if raw := self.end():
                    yield raw
            else:
                number, offset = (self.number, self.offset) if self.lines else where.at(start)
                if raw := self.add(stripped, number, offset):
                    yield raw
            start += len(line) + 1


class _Positions:
    """Line numbers and byte offsets of places in a block, asked for in increasing order."""

    def __init__(self, block: Block) -> None:
        self.text = block.text
        self.ascii = block.text.isascii()
        self.position = 0
        self.number = block.number
        self.offset = block.offset

    def at(self, position: int) -> tuple[int, int | None]:
        """(line number, byte offset) of the line starting at `position` of the block's text."""
        text = self.text
        self.number += text.count("\n", self.position, position)
        if self.offset is not None and self.ascii:
            self.offset += position - self.position
        elif self.offset is not None:
            self.offset += len(text[self.position : position].encode("utf-8"))
        self.position = position
        return self.number, self.offset


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
            value = json_limits.loads(line.text)
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
