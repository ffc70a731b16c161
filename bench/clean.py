"""The clean stage on a 200 MB corpus: throughput and peak memory of `python -m training clean`.

The corpus is tinyshakespeare repeated and perturbed: the first copy as it is, then copies in which
each document is, by chance, left exact (found by exact dedup), lightly perturbed (a word's case
changed, two words swapped: near duplicates) or heavily perturbed (its lines shuffled, many words
recased and a contact line with an e-mail address and a phone number added: new documents, kept).
Documents are runs of PARAGRAPHS_PER_DOCUMENT paragraphs, about 3 kB, nearer a web page than a
single line of dialogue. The stage runs with every step on, near-duplicate
removal and scrubbing included, as a child process timed from start to exit.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(os.environ.get("LAB_SAMPLE_DATA", ROOT / ".." / "shared" / "data")).resolve()
CORPUS = SAMPLE_DATA / "corpora" / "tinyshakespeare.txt"
TARGET_BYTES = 200_000_000
PARAGRAPHS_PER_DOCUMENT = 20
SHARES = {"exact": 0.2, "light": 0.3, "heavy": 0.5}  # of the documents of each copy after the first
NAMES = ("romeo", "juliet", "hamlet", "ophelia", "portia", "lear")
GOAL_MB_PER_S = 20
GOAL_PEAK_RSS_MB = 300


def documents() -> list[str]:
    text = CORPUS.read_text(encoding="utf-8")
    paragraphs = [p.strip("\n") for p in text.split("\n\n") if p.strip()]
    n = PARAGRAPHS_PER_DOCUMENT
    return ["\n\n".join(paragraphs[i:i + n]) for i in range(0, len(paragraphs), n)]


def light(doc: str, rng: random.Random) -> str:
    words = doc.split(" ")
    i = rng.randrange(len(words) - 1)
    if rng.random() < 0.5:
        words[i] = words[i].upper()
    else:
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def heavy(doc: str, rng: random.Random) -> str:
    lines = doc.split("\n")
    rng.shuffle(lines)
    words = "\n".join(lines).split(" ")
    for i in rng.sample(range(len(words)), len(words) // 4):
        words[i] = words[i].swapcase()
    name, number = rng.choice(NAMES), rng.randrange(10**4)
    return " ".join(words) + f"\nWrite to {name}@example.org or call +44 20 7946 {number:04d}."


def perturbed_copies(originals: list[str], seed: int = 0) -> Iterator[str]:
    """The originals, then perturbed copies of them, forever."""
    rng = random.Random(seed)
    yield from originals
    perturb = {"exact": lambda doc, rng: doc, "light": light, "heavy": heavy}
    kinds, weights = list(SHARES), list(SHARES.values())
    while True:
        for doc, kind in zip(originals, rng.choices(kinds, weights, k=len(originals)), strict=True):
            yield perturb[kind](doc, rng)


def build_corpus(path: Path, target_bytes: int) -> tuple[int, int]:
    """Write documents as JSON lines until the file holds `target_bytes`; (bytes, documents)."""
    written = count = 0
    with path.open("w", encoding="utf-8") as f:
        for doc in perturbed_copies(documents()):
            line = json.dumps({"text": doc}) + "\n"
            f.write(line)
            written += len(line)
            count += 1
            if written >= target_bytes:
                return written, count
    raise AssertionError("unreachable: the copies never end")


def run_stage(config: Path, events: Path) -> tuple[int, float, int]:
    """(exit code, seconds, peak RSS in bytes) of `python -m training clean` as a child process."""
    start = time.perf_counter()
    command = ["-m", "training", "clean", "--config", str(config), "--events", str(events)]
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL)
    # wait4 gives this child's own peak RSS; RUSAGE_CHILDREN would be the largest of every child
    # this process ever waited for, the workers of a benchmark run before this one included.
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, seconds, usage.ru_maxrss * 1024  # Linux reports kilobytes


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="lab-bench-clean-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus_bytes, corpus_documents = build_corpus(corpus, TARGET_BYTES)
        config = Path(tmp) / "clean.json"
        config.write_text(json.dumps({
            "input_path": str(corpus), "input_format": "jsonl",
            "output_dir": str(Path(tmp) / "out"),
            "scrub_emails": True, "scrub_phones": True, "near_dedup": True,
        }))
        events_path = Path(tmp) / "events.jsonl"
        code, seconds, peak_rss = run_stage(config, events_path)
        events = [json.loads(line) for line in events_path.read_text().splitlines()]
    if code != 0 or events[-1].get("status") != "succeeded":
        raise RuntimeError(f"the clean stage failed (exit {code}): {events[-1]}")
    (report,) = [e["metadata"] for e in events if e["type"] == "artifact"]
    mb_per_s = corpus_bytes / 1e6 / seconds
    peak_mb = peak_rss / 1e6
    return {
        "corpus": {
            "bytes": corpus_bytes, "documents": corpus_documents,
            "kept": report["documents_kept"], "removed": report["removed"],
            "replaced": report["replaced"],
        },
        "throughput": {
            "seconds": round(seconds, 2), "mb_per_s": round(mb_per_s, 2),
            "stage_mb_per_s": report["mb_per_s"],
            "goal": f">= {GOAL_MB_PER_S}", "met": mb_per_s >= GOAL_MB_PER_S,
        },
        "peak_rss_mb": {
            "value": round(peak_mb, 1),
            "goal": f"<= {GOAL_PEAK_RSS_MB}", "met": peak_mb <= GOAL_PEAK_RSS_MB,
        },
    }
