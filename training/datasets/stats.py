"""Statistics gathered in one pass with flat memory: fixed log-spaced bins and capped counts."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from typing import Any, Protocol

# Four bins an octave from 1 to 2**40, as integers: 0, 1, 2, 3, 4, 5, 6, 8, 9, 11, 13, 16, 19, …
EDGES = sorted({0} | {int(2 ** (k / 4)) for k in range(4 * 40 + 1)})
MAX_KEYS = 1000
"""Distinct values a breakdown counts (labels, roles…); the rest are counted under OTHER."""
OTHER = "(other)"
MAX_TURNS = 64
"""Conversations this long or longer are counted together."""
TOKEN_BATCH = 256
"""Records encoded per call to the tokenizer, which runs a batch on all cores."""


class Histogram:
    """Counts of non-negative integers in the bins EDGES[i] <= value < EDGES[i + 1]."""

    def __init__(self) -> None:
        self.counts = [0] * len(EDGES)
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def add(self, value: int) -> None:
        self.counts[bisect_right(EDGES, value) - 1] += 1
        self.count += 1
        self.total += value
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)

    def quantile(self, q: float) -> float | None:
        """Estimated from the bins, linearly within the one holding it; exact at 0 and 1."""
        if not self.count:
            return None
        if q <= 0 or q >= 1:
            return float(self.min if q <= 0 else self.max)  # type: ignore[arg-type]
        target = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            if n and seen + n >= target:
                lo = max(EDGES[i], self.min or 0)
                hi = min(EDGES[i + 1] if i + 1 < len(EDGES) else lo + 1, (self.max or 0) + 1)
                return lo + (hi - lo) * (target - seen) / n
            seen += n
        return float(self.max or 0)

    def to_dict(self) -> dict[str, Any]:
        """`bins` are `[low, high, count]` from the first to the last bin holding a value."""
        used = [i for i, n in enumerate(self.counts) if n]
        bins = []
        if used:
            for i in range(used[0], used[-1] + 1):
                high = EDGES[i + 1] if i + 1 < len(EDGES) else None
                bins.append([EDGES[i], high, self.counts[i]])
        return {
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "mean": self.total / self.count if self.count else None,
            "p50": self.quantile(0.5),
            "p90": self.quantile(0.9),
            "p99": self.quantile(0.99),
            "bins": bins,
        }


class Breakdown:
    """Counts by value, at most MAX_KEYS distinct ones."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, value: str, n: int = 1) -> None:
        if value not in self.counts and len(self.counts) >= MAX_KEYS:
            value = OTHER
        self.counts[value] += n

    def to_dict(self) -> dict[str, int]:
        return dict(self.counts.most_common())


class Tokenizer(Protocol):
    """What is used of a `tokenizers.Tokenizer`."""

    def encode_batch(self, input: list[str], add_special_tokens: bool = ...) -> list[Any]: ...


class TokenCounter:
    """Tokens a record, under a tokenizer; records are encoded TOKEN_BATCH at a time."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.histogram = Histogram()
        self._texts: list[str] = []
        self._owners: list[int] = []
        self._records = 0

    def add(self, texts: list[str]) -> None:
        self._texts.extend(texts)
        self._owners.extend([self._records] * len(texts))
        self._records += 1
        if self._records >= TOKEN_BATCH:
            self.flush()

    def flush(self) -> None:
        per_record = [0] * self._records
        if self._texts:
            encodings = self.tokenizer.encode_batch(self._texts, add_special_tokens=False)
            for owner, encoding in zip(self._owners, encodings, strict=True):
                per_record[owner] += len(encoding.ids)
        for n in per_record:
            self.histogram.add(n)
        self._texts, self._owners, self._records = [], [], 0
