"""Canonical records out of a dataset file in one streaming pass, for trainers and previews."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from training.datasets.archives import DEFAULT_LIMITS, ArchiveLimits, read_tar, read_zip
from training.datasets.errors import DatasetError
from training.datasets.formats import (
    Raw,
    detect_format,
    read_delimited,
    read_delimited_header,
    read_jsonl,
    read_parquet,
    read_txt,
    read_txt_texts,
)
from training.datasets.kinds import EXPECTED_FIELDS, check_kind, detect_kind, normalise
from training.datasets.textio import iter_blocks, iter_lines

MAX_ERRORS_BEFORE_KIND = 20
"""detect_file_kind gives up after this many unreadable records without one that has a kind."""


class Checkpoint(NamedTuple):
    """Where reading can restart: record `record` (0-based) starts at `position` (a byte offset,
    or a Parquet row) on line `line`. describe() keeps one every thousand records."""

    record: int
    position: int
    line: int


@dataclass
class Parsed:
    record: dict[str, Any]
    """The canonical record (see kinds.py)."""
    shape: str
    """The shape it came in, such as `alpaca` or `hh`."""
    raw: Raw


class Scan:
    """One pass over a dataset file: its canonical records, and a DatasetError for each record that
    fails, in file order. A file that cannot be read at all raises its DatasetError instead.

    `kind` is detected from the first readable record when not given; after that, a record that
    clearly belongs to another kind is an error (a file holds one kind). A given `kind` is applied
    to every record, and fields it does not use are ignored. `name` is the file's name in errors
    and decides its format (default: the path's name).
    """

    def __init__(
        self,
        path: str | Path,
        kind: str | None = None,
        *,
        name: str | None = None,
        limits: ArchiveLimits = DEFAULT_LIMITS,
        resume: Checkpoint | None = None,
    ) -> None:
        self.path = Path(path)
        self.file = name or self.path.name
        self.format = detect_format(self.file)
        self.kind = check_kind(kind) if kind is not None else None
        self.kind_given = kind is not None
        self.detected_at: int | None = None
        self.limits = limits
        self.resume = resume

    def __iter__(self) -> Iterator[Parsed | DatasetError]:
        if not self.path.is_file():
            raise DatasetError("no such file", file=self.file)
        for raw in self._raw():
            if isinstance(raw, DatasetError):
                yield raw
                continue
            self._settle_kind(raw)
            assert self.kind is not None
            value = raw.value if isinstance(raw.value, dict) else {"text": raw.value}
            try:
                self._check_same_kind(raw)
                normalised = normalise(self.kind, value)
            except DatasetError as e:
                yield e.located(raw.file, raw.line)
                continue
            if normalised is not None:
                yield Parsed(normalised[0], normalised[1], raw)

    def _raw(self) -> Iterator[Raw | DatasetError]:
        fmt, path, file, resume = self.format, self.path, self.file, self.resume
        if fmt == "zip":
            yield from read_zip(path, file, self.limits)
        elif fmt == "tar":
            yield from read_tar(path, file, self.limits)
        elif fmt == "parquet":
            yield from read_parquet(path, file, resume.position if resume else 0)
        else:
            header = None
            if resume is not None and fmt in ("csv", "tsv"):
                with path.open("rb") as f:
                    header = read_delimited_header(iter_lines(f, file), file, fmt)
            with path.open("rb") as f:
                start = (resume.position, resume.line) if resume else None
                if fmt == "txt":
                    yield from read_txt(iter_blocks(f, file, start), file)
                elif fmt == "jsonl":
                    yield from read_jsonl(iter_lines(f, file, start), file)
                else:
                    yield from read_delimited(iter_lines(f, file, start), file, fmt, header)

    def _settle_kind(self, raw: Raw) -> None:
        """Detect the kind from the first readable record; refuse text documents as another kind."""
        if isinstance(raw.value, str):
            if self.kind not in (None, "text"):
                reason = f"holds plain text documents, which cannot be of kind {self.kind}"
                raise DatasetError(reason, file=raw.file, line=raw.line)
            seen: str | None = "text"
        else:
            seen = detect_kind(raw.value)
        if self.kind is not None:
            return
        if seen is None:
            keys = [f'"{k}"' for k in raw.value]  # type: ignore[union-attr]
            fields = ", ".join(keys[:10]) + (", …" if len(keys) > 10 else "") or "none"
            what = "columns" if self.format in ("csv", "tsv") else "fields"
            reason = f"cannot tell the dataset kind from its {what} ({fields}); "
            reason += f"expected {EXPECTED_FIELDS}"
            raise DatasetError(reason, file=raw.file, line=raw.line)
        self.kind, self.detected_at = seen, raw.line

    def _check_same_kind(self, raw: Raw) -> None:
        if self.kind_given or isinstance(raw.value, str):
            return
        seen = detect_kind(raw.value)
        if seen is not None and seen != self.kind:
            since = f" (from line {self.detected_at})" if self.detected_at is not None else ""
            reason = f"looks like a {seen} record, but the file's kind is {self.kind}{since}; "
            reason += "a file holds one kind"
            raise DatasetError(reason)


def iter_records(
    path: str | Path,
    kind: str | None = None,
    *,
    name: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> Iterator[dict[str, Any]]:
    """The file's canonical records in order; raises the first DatasetError, and one at the end
    when the file holds no record."""
    scan = Scan(path, kind, name=name, limits=limits)
    empty = True
    for item in scan:
        if isinstance(item, DatasetError):
            raise item
        empty = False
        yield item.record
    if empty:
        raise DatasetError("holds no records", file=scan.file)


def iter_txt_documents(path: str | Path, *, name: str | None = None) -> Iterator[str]:
    """The documents of a `.txt` file, as iter_records(path, "text") gives them but as plain
    strings, without the work per record that other formats and kinds need: the corpus stages'
    hot path. Raises the first DatasetError, and one at the end when the file holds no document."""
    file = name or Path(path).name
    empty = True
    with Path(path).open("rb") as f:
        for text in read_txt_texts(iter_blocks(f, file), file):
            if isinstance(text, DatasetError):
                raise text
            empty = False
            yield text
    if empty:
        raise DatasetError("holds no records", file=file)


def detect_file_kind(
    path: str | Path, *, name: str | None = None, limits: ArchiveLimits = DEFAULT_LIMITS
) -> str:
    """The kind of the file's first readable record, reading no further than that."""
    scan = Scan(path, name=name, limits=limits)
    errors: list[DatasetError] = []
    with contextlib.closing(iter(scan)) as items:
        for item in items:
            if scan.kind is not None:
                return scan.kind
            assert isinstance(item, DatasetError)
            errors.append(item)
            if len(errors) >= MAX_ERRORS_BEFORE_KIND:
                break
    if errors:
        raise errors[0]
    raise DatasetError("holds no records", file=scan.file)


def read_page(
    path: str | Path,
    offset: int,
    limit: int,
    kind: str | None = None,
    *,
    index: Sequence[Sequence[int]] = (),
    name: str | None = None,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> list[dict[str, Any]]:
    """Canonical records `offset` to `offset + limit` (0-based), for a paged preview.

    Precondition: the file validated (describe() found no error). With describe()'s `page_index`,
    reading starts at the last checkpoint before `offset` instead of the top of the file.
    """
    if offset < 0 or limit < 1:
        raise ValueError("offset must be at least 0 and limit at least 1")
    starts = [Checkpoint(*c) for c in index if c[0] <= offset]
    checkpoint = max(starts, default=None)
    number = checkpoint.record if checkpoint else 0
    page: list[dict[str, Any]] = []
    scan = Scan(path, kind, name=name, limits=limits, resume=checkpoint)
    with contextlib.closing(iter(scan)) as items:
        for item in items:
            if isinstance(item, DatasetError):
                raise item
            if number >= offset:
                page.append(item.record)
                if len(page) == limit:
                    break
            number += 1
    return page
