"""What an evaluation artifact holds, shaped for pages: its metrics as a table (from the artifact's metadata) and
its per-example rows (`results.jsonl`, training/evaluate.py) as failures and disagreements. No torch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_LINE_BYTES = 2_000_000
"""A row longer than this is not one the evaluate stage wrote (it cuts prompts to 500 characters)."""


@dataclass
class Table:
    """Checkpoints × metrics, each cell `{"value", "low", "high", "n"}` or None."""

    names: list[str]
    rows: list[dict[str, Any]]
    subjects: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chart(self) -> dict[str, Any]:
        """The bar chart's data: one trace per checkpoint, a bar per metric, error bars to the interval."""
        return {"metrics": self.names, "models": [
            {"label": r["label"], "values": [c and c["value"] for c in r["cells"]],
             "plus": [c and c["high"] - c["value"] for c in r["cells"]],
             "minus": [c and c["value"] - c["low"] for c in r["cells"]]} for r in self.rows]}


def metric_table(metadata: dict[str, Any]) -> Table:
    """The table of an evaluation's metadata; metrics missing for a model are empty cells."""
    models = [m for m in metadata.get("models", []) if isinstance(m, dict)]
    names: list[str] = []
    for model in models:
        names += [name for name in model.get("metrics", {}) if name not in names]
    rows = [{"label": m.get("label", "?"), "artifact": m.get("artifact"),
             "cells": [_cell(m.get("metrics", {}).get(name)) for name in names]} for m in models]
    subjects = sorted({s for m in models for s in m.get("subjects", {})})
    by_subject = [{"subject": s, "cells": [_cell(m.get("subjects", {}).get(s, {}).get("acc")) for m in models]}
                  for s in subjects]
    return Table(names, rows, by_subject)


def _cell(metric: Any) -> dict[str, Any] | None:
    if not isinstance(metric, dict) or not isinstance(metric.get("value"), (int, float)):
        return None
    value = metric["value"]
    low, high = metric.get("low"), metric.get("high")
    return {"value": value, "low": low if isinstance(low, (int, float)) else value,
            "high": high if isinstance(high, (int, float)) else value, "n": metric.get("n")}


def read_rows(path: str | Path) -> tuple[list[dict[str, Any]], str | None]:
    """The rows of a `results.jsonl` and None, or what it holds before a bad line and the error naming that line."""
    rows: list[dict[str, Any]] = []
    name = Path(path).name
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if len(line) > MAX_LINE_BYTES:
                    return rows, f"{name}, line {number}: longer than {MAX_LINE_BYTES:,} bytes"
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    return rows, f"{name}, line {number}: not JSON ({exc})"
                if not isinstance(row, dict):
                    return rows, f"{name}, line {number}: not an object"
                rows.append(row)
    except OSError as exc:
        return rows, f"{name} cannot be read: {exc.strerror}"
    return rows, None


def failures(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The examples `model` got wrong, in file order; for perplexity (no right or wrong) its documents, most
    perplexing first."""
    own = [r for r in rows if r.get("model") == model]
    if any(r.get("correct") is not None for r in own):
        return [r for r in own if r.get("correct") is False]
    return sorted(own, key=lambda r: -(r.get("perplexity") or 0))


def disagreements(rows: list[dict[str, Any]], a: str, b: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The examples where `a` and `b` answered differently (or one was right and the other not), as pairs."""
    of_b = {r.get("index"): r for r in rows if r.get("model") == b}
    pairs = []
    for row in rows:
        if row.get("model") != a or (other := of_b.get(row.get("index"))) is None:
            continue
        if row.get("answer") != other.get("answer") or row.get("correct") != other.get("correct"):
            pairs.append((row, other))
    return pairs
