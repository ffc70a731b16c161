"""The clean stage: normalise, scrub, filter and deduplicate a corpus, then split it
(`python -m training clean`).

Each document goes through the steps in order, each of which can be switched off: Unicode NFC and
control characters, e-mail and phone scrubbing, quality filters (length, share of letters, repeated
lines), exact deduplication, near-duplicate removal, and a seeded train/validation split. The corpus
streams through in batches of about a megabyte, so memory stays flat whatever its size; only the
duplicate indexes grow, by about 2 kB of hashes per kept document (training/clean_dedup.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.clean_config import CleanConfig
from training.clean_dedup import ExactDeduplicator, NearDeduplicator, text_digest
from training.clean_output import TRAIN_FILE, VALIDATION_FILE, SplitWriter
from training.clean_rules import (
    alpha_ratio,
    normalise,
    repeated_line_ratio,
    scrub_emails,
    scrub_phones,
)
from training.config import ConfigError, require_file
from training.corpus import CorpusError, iter_batches, iter_documents
from training.events import Reporter
from training.stage_shape import setup_then_fit

REPORT_FILE = "report.json"
RULES = (
    "too_short",
    "too_long",
    "low_alpha_ratio",
    "repeated_lines",
    "exact_duplicate",
    "near_duplicate",
)
EXAMPLES_PER_RULE = 5
EXAMPLE_CHARS = 300
BATCH_CHARS = 1 << 20
METRIC_INTERVAL_S = 0.5


@dataclass
class CleanRun:
    cfg: CleanConfig
    reporter: Reporter
    input_path: Path


def clean_corpus(cfg: CleanConfig, reporter: Reporter) -> Path | None:
    """Clean, write `train.jsonl`, `validation.jsonl` and `report.json` into `output_dir`, report
    the corpus as an artifact; the report's path, or None if stopped (nothing is written then)."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: CleanConfig, reporter: Reporter) -> CleanRun:
    input_path = require_file("input_path", cfg.input_path)
    reporter.status("running")
    reporter.log(f"cleaning {input_path} ({input_path.stat().st_size / 1e6:.1f} MB)")
    return CleanRun(cfg, reporter, input_path)


def fit(run: CleanRun) -> Path | None:
    cfg, reporter, input_path = run.cfg, run.reporter, run.input_path
    tally = _Tally()
    progress = _Progress(reporter, input_path.stat().st_size)
    output_dir = Path(cfg.output_dir)
    with SplitWriter(output_dir, cfg.seed, cfg.val_fraction) as writer:
        finished = _clean_documents(cfg, reporter, writer, tally, progress)
        if finished:
            progress.update(tally.documents_in, tally.bytes_in, final=True)
            paths = writer.commit()
    if not finished:  # the writer has deleted its files by now
        reporter.status("cancelled")
        return None

    report = tally.report(writer.counts, progress.elapsed())
    report["files"] = {"train": TRAIN_FILE, "validation": VALIDATION_FILE}
    report_path = _write_json(output_dir / REPORT_FILE, report)
    removed = sum(report["removed"].values())
    reporter.log(
        f"kept {report['documents_kept']} of {report['documents_in']} documents "
        f"({removed} removed); {report['mb_per_s']:.1f} MB/s"
    )
    reporter.artifact("corpus", str(paths["train"].resolve()), report)
    summary = {k: v for k, v in report.items() if k not in ("examples", "files")}
    reporter.status("succeeded", summary=summary)
    return report_path


def _clean_documents(
    cfg: CleanConfig, reporter: Reporter, writer: SplitWriter, tally: _Tally, progress: _Progress
) -> bool:
    """Run every document through the steps, writing the kept ones; False if a stop was asked."""
    exact = ExactDeduplicator() if cfg.exact_dedup else None
    near = NearDeduplicator(cfg.near_dup_threshold, cfg.near_dup_ngram) if cfg.near_dedup else None
    for batch in iter_batches(_documents(cfg), BATCH_CHARS):
        if reporter.should_stop():
            return False
        survivors: list[tuple[str, bytes, bytes]] = []  # (text, its UTF-8, its digest)
        for raw in batch:
            tally.read(raw)
            text = _rewrite(raw, cfg, tally)
            rule = _quality_failure(text, cfg)
            if rule is not None:
                tally.remove(rule, text)
                continue
            data = text.encode("utf-8")
            digest = text_digest(data)
            if exact is not None and exact.is_duplicate(digest):
                tally.remove("exact_duplicate", text)
                continue
            survivors.append((text, data, digest))
        keep = near.keep([s[0] for s in survivors]) if near else [True] * len(survivors)
        for (text, data, digest), kept in zip(survivors, keep, strict=True):
            if kept:
                writer.write(text, digest)
                tally.bytes_out += len(data)
            else:
                tally.remove("near_duplicate", text)
        progress.update(tally.documents_in, tally.bytes_in)
    return True


def _documents(cfg: CleanConfig) -> Iterator[str]:
    try:
        yield from iter_documents(cfg.input_path, cfg.input_format)
    except CorpusError as e:  # the reader names `corpus_path`; this stage calls it `input_path`
        raise ConfigError("input_path", e.message) from None


def _rewrite(text: str, cfg: CleanConfig, tally: _Tally) -> str:
    """The text normalised and scrubbed as configured; counts the replacements."""
    if cfg.normalize:
        text = normalise(text)
    if cfg.scrub_emails:
        text, n = scrub_emails(text)
        tally.replaced["email"] += n
    if cfg.scrub_phones:
        text, n = scrub_phones(text)
        tally.replaced["phone"] += n
    return text


def _quality_failure(text: str, cfg: CleanConfig) -> str | None:
    """The name of the first quality rule the text fails, or None."""
    if len(text) < cfg.min_chars or text.isspace():
        return "too_short"
    if len(text) > cfg.max_chars:
        return "too_long"
    if cfg.min_alpha_ratio > 0 and alpha_ratio(text) < cfg.min_alpha_ratio:
        return "low_alpha_ratio"
    if cfg.max_repeated_line_ratio < 1 and repeated_line_ratio(text) > cfg.max_repeated_line_ratio:
        return "repeated_lines"
    return None


class _Tally:
    """Counts, bytes and the first few examples of each rule, turned into the report at the end."""

    def __init__(self) -> None:
        self.documents_in = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.removed = dict.fromkeys(RULES, 0)
        self.replaced = {"email": 0, "phone": 0}
        self.examples: dict[str, list[str]] = {rule: [] for rule in RULES}

    def read(self, raw: str) -> None:
        self.documents_in += 1
        self.bytes_in += len(raw.encode("utf-8"))

    def remove(self, rule: str, text: str) -> None:
        self.removed[rule] += 1
        examples = self.examples[rule]
        if len(examples) < EXAMPLES_PER_RULE:
            examples.append(text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "…")

    def report(self, split: dict[str, int], seconds: float) -> dict[str, Any]:
        return {
            "documents_in": self.documents_in,
            "documents_kept": split["train"] + split["validation"],
            "removed": dict(self.removed),
            "replaced": dict(self.replaced),
            "split": dict(split),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "seconds": round(seconds, 3),
            "mb_per_s": round(self.bytes_in / 1e6 / max(seconds, 1e-9), 3),
            "examples": self.examples,
        }


class _Progress:
    """`metric` events of progress and speed, at most one per METRIC_INTERVAL_S."""

    def __init__(self, reporter: Reporter, total_bytes: int) -> None:
        self.reporter = reporter
        self.total_bytes = max(total_bytes, 1)
        self.start = self.last = time.monotonic()
        self.last_documents = self.last_bytes = 0

    def update(self, documents: int, bytes_read: int, final: bool = False) -> None:
        """Rates over the last interval; with `final`, progress 1 and the rates of the whole run."""
        now = time.monotonic()
        if not final and now - self.last < METRIC_INTERVAL_S:
            return
        since, base_documents, base_bytes = (
            (self.start, 0, 0) if final else (self.last, self.last_documents, self.last_bytes)
        )
        seconds = max(now - since, 1e-9)
        # Document bytes leave out the file's separators and JSON syntax: short of 1 until the end.
        progress = 1.0 if final else min(bytes_read / self.total_bytes, 1.0)
        self.reporter.metric(step=documents, values={
            "progress": round(progress, 4),
            "docs_per_s": round((documents - base_documents) / seconds, 1),
            "mb_per_s": round((bytes_read - base_bytes) / 1e6 / seconds, 3),
        })
        self.last, self.last_documents, self.last_bytes = now, documents, bytes_read

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _write_json(path: Path, data: dict[str, Any]) -> Path:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temp, path)
    return path
