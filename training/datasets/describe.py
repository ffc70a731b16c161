"""describe(): validate a dataset file and gather what its page shows, in one streaming pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from string import ascii_uppercase
from typing import Any

from training.datasets.archives import DEFAULT_LIMITS, ArchiveLimits
from training.datasets.errors import DatasetError
from training.datasets.kinds import texts_of
from training.datasets.records import Checkpoint, Parsed, Scan
from training.datasets.stats import MAX_TURNS, Breakdown, Histogram, TokenCounter, Tokenizer

MAX_ERRORS = 20
"""Errors collected before validation stops: enough to see a pattern, few enough to read."""
PAGE_INDEX_EVERY = 1000
"""Records between two checkpoints of the page index."""


@dataclass
class DatasetDescription:
    """A dataset file as its page shows it. When `errors` is not empty the file must be refused;
    when `stopped_early`, the counts only cover the file up to the last error."""

    file: str
    format: str
    kind: str | None
    bytes: int
    rows: int = 0
    """Valid records."""
    chars: dict[str, Any] = field(default_factory=dict)
    """Characters a record (all its texts), as Histogram.to_dict()."""
    tokens: dict[str, Any] | None = None
    """Tokens a record under the tokenizer given, as Histogram.to_dict(); None without one."""
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)
    """Counts by value: `shapes` always; `labels` (classification); `roles` and `turns` (sft);
    `answers` and `choices` (multiple-choice eval)."""
    page_index: list[Checkpoint] = field(default_factory=list)
    """Checkpoints for read_page(); empty where reading cannot seek (archives, UTF-16)."""
    errors: list[DatasetError] = field(default_factory=list)
    stopped_early: bool = False
    """Validation stopped at MAX_ERRORS errors; more may follow."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise the first error, if any (its text names the others' count)."""
        if self.errors:
            first = self.errors[0]
            if len(self.errors) > 1:
                more = f"{len(self.errors) - 1}{'+' if self.stopped_early else ''}"
                raise DatasetError(
                    f"{first.message} (and {more} more errors)",
                    file=first.file,
                    line=first.line,
                    field=first.field,
                )
            raise first

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "kind": self.kind,
            "bytes": self.bytes,
            "rows": self.rows,
            "chars": self.chars,
            "tokens": self.tokens,
            "breakdown": self.breakdown,
            "page_index": [list(c) for c in self.page_index],
            "errors": [e.to_dict() for e in self.errors],
            "stopped_early": self.stopped_early,
        }


def describe(
    path: str | Path,
    kind: str | None = None,
    *,
    name: str | None = None,
    tokenizer: Tokenizer | None = None,
    max_errors: int = MAX_ERRORS,
    limits: ArchiveLimits = DEFAULT_LIMITS,
) -> DatasetDescription:
    """Validate every record of the file and describe it; errors are collected, not raised.

    `kind` overrides detection; `name`, the upload's name, is shown in errors and decides the
    format; `tokenizer`, a `tokenizers.Tokenizer`, adds token counts. Only an unsupported file name
    or an unknown `kind` raise; everything wrong with the file itself is in `errors`.
    """
    scan = Scan(path, kind, name=name, limits=limits)
    size = scan.path.stat().st_size if scan.path.is_file() else 0
    description = DatasetDescription(scan.file, scan.format, scan.kind, size)
    tally = _Tally(tokenizer)
    try:
        for item in scan:
            if isinstance(item, DatasetError):
                description.errors.append(item)
                if len(description.errors) >= max_errors:
                    description.stopped_early = True
                    break
                continue
            if tally.rows % PAGE_INDEX_EVERY == 0 and item.raw.resume is not None:
                position = item.raw.resume
                description.page_index.append(Checkpoint(tally.rows, position, item.raw.line or 1))
            assert scan.kind is not None
            tally.add(scan.kind, item)
    except DatasetError as e:
        description.errors.append(e)
    if tally.rows == 0 and not description.errors:
        description.errors.append(DatasetError("holds no records", file=scan.file))
    description.kind = scan.kind
    tally.finish(description)
    return description


class _Tally:
    def __init__(self, tokenizer: Tokenizer | None) -> None:
        self.rows = 0
        self.chars = Histogram()
        self.tokens = TokenCounter(tokenizer) if tokenizer is not None else None
        self.breakdown: dict[str, Breakdown] = {}

    def add(self, kind: str, item: Parsed) -> None:
        self.rows += 1
        record = item.record
        texts = texts_of(kind, record)
        self.chars.add(sum(len(t) for t in texts))
        if self.tokens is not None:
            self.tokens.add(texts)
        self._count("shapes", item.shape)
        if kind == "classification":
            self._count("labels", record["label"])
        elif kind == "sft":
            messages = record["messages"]
            for message in messages:
                self._count("roles", message["role"])
            turns = len(messages)
            self._count("turns", str(turns) if turns < MAX_TURNS else f"{MAX_TURNS}+")
        elif kind == "eval" and "choices" in record:
            answer = record["answer"]
            self._count("answers", ascii_uppercase[answer] if answer < 26 else str(answer))
            self._count("choices", str(len(record["choices"])))

    def _count(self, breakdown: str, value: str) -> None:
        self.breakdown.setdefault(breakdown, Breakdown()).add(value)

    def finish(self, description: DatasetDescription) -> None:
        description.rows = self.rows
        description.chars = self.chars.to_dict()
        if self.tokens is not None:
            self.tokens.flush()
            description.tokens = self.tokens.histogram.to_dict()
        description.breakdown = {name: b.to_dict() for name, b in self.breakdown.items()}
