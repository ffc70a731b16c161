"""Tokenizer training through the lab against the `tokenizers` library called directly.

The corpus is tinyshakespeare repeated to ~20 MB, uploaded as a dataset into the demo team and
picked by the demo notebook's corpus cell. The notebook's tokenizer cell (byte-level BPE, vocab
2048, min frequency 2, `<|endoftext|>` and `<|pad|>`) runs on a real worker (Celery task →
`python -m training tokenizer` child → events stored and streamed), interleaved with
`bench/tokenizer_bare.py` on that run's frozen config, three pairs; the two must learn the same
vocabulary and merges. The score is the median of the pairs' direct/lab time ratios (speed ratio).

What is timed, both sides from before a Python interpreter starts to after the work is done:
- lab: from the run's first stored event (`queued`, stamped when the run is created) to its last
  (`succeeded`, stamped by the training process). It includes the queue, the worker's claim, the
  child's start and imports, reading the corpus, training, saving tokenizer.json and
  tokenizer_config.json, and the artifact's metadata (corpus statistics, and the token count
  estimated by encoding the corpus's first 128 KiB).
- direct: from just before the benchmark spawns `bench/tokenizer_bare.py` to the moment that script's
  `tokenizer.save` returned: interpreter start, import, reading the corpus, training, saving.
The lab's time is also split into phases: `start` (first event → the training process's first
event), `train_and_save` (→ tokenizer.json written, its mtime) and `after_save` (→ last event).
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.lab import BenchLab
from bench.pretrain import demo_cells, run_cell

BENCH_DIR = Path(__file__).resolve().parent
TARGET_BYTES = 20_000_000
GOAL_RATIO = 0.95


def upload_corpus(lab: BenchLab, tokenizer_cell, user):
    """Repeat the demo corpus to TARGET_BYTES, upload it and point the corpus cell at it."""
    from lab.datasets.actions import create_dataset_from_path
    from lab.datasets.models import Dataset
    from lab.notebooks.models import Cell

    corpus_cell = Cell.objects.get(pk=tokenizer_cell.config["corpus_cell"])
    text = Dataset.objects.get(pk=corpus_cell.config["corpus"]).absolute_path.read_text(encoding="utf-8")
    copies = math.ceil(TARGET_BYTES / len(text.encode("utf-8")))
    path = lab.tmp / "tinyshakespeare-20mb.txt"
    # A blank line between copies, so that no document runs from one copy into the next.
    path.write_text("\n\n".join([text.strip("\n")] * copies) + "\n", encoding="utf-8")
    dataset = create_dataset_from_path(tokenizer_cell.notebook.team, user, path, name=path.stem)
    corpus_cell.config = {**corpus_cell.config, "corpus": dataset.pk}
    corpus_cell.save(update_fields=["config"])
    return dataset, copies


def lab_timing(run) -> tuple[float, dict[str, float]]:
    """(seconds from first to last event, the phases of that span)."""
    out = Path(run.config["output_dir"])
    events = list(run.events.order_by("seq"))
    # The worker writes the child's config after storing its own events and just before launching it.
    launched = (out / f"attempt-{run.attempt}.json").stat().st_mtime
    child_first = next(e.t for e in events if e.t > launched)
    saved = (out / "tokenizer.json").stat().st_mtime
    first, last = events[0].t, events[-1].t
    return last - first, {"start": child_first - first, "train_and_save": saved - child_first,
                          "after_save": last - saved}


def direct_seconds(run, out_dir: Path) -> float:
    config = Path(run.config["output_dir"]) / f"attempt-{run.attempt}.json"
    started = time.time()
    out = subprocess.run([sys.executable, str(BENCH_DIR / "tokenizer_bare.py"), str(config), str(out_dir)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["saved_at"] - started


def same_model(a: Path, b: Path) -> bool:
    ja, jb = json.loads(a.read_text()), json.loads(b.read_text())
    return ja["model"] == jb["model"] and ja["added_tokens"] == jb["added_tokens"]


def main(repeats: int = 3) -> dict:
    with BenchLab() as lab:
        tokenizer, _, user = demo_cells()
        dataset, copies = upload_corpus(lab, tokenizer, user)
        lab_s, direct_s, phases = [], [], {"start": [], "train_and_save": [], "after_save": []}
        for i in range(repeats):  # interleaved, so that drift in the machine hits both alike
            run = run_cell(lab, tokenizer, user)
            seconds, parts = lab_timing(run)
            lab_s.append(seconds)
            for name, value in parts.items():
                phases[name].append(round(value, 3))
            bare_dir = lab.tmp / f"bare-{i}"
            direct_s.append(direct_seconds(run, bare_dir))
            if not same_model(Path(run.config["output_dir"]) / "tokenizer.json", bare_dir / "tokenizer.json"):
                raise RuntimeError("the lab and the direct call learned different tokenizers: not the same work")
        summary = run.artifacts.get(kind="tokenizer").metadata
        settings = {k: run.config[k] for k in ("algorithm", "vocab_size", "min_frequency", "special_tokens")}
    ratios = [direct / lab for lab, direct in zip(lab_s, direct_s, strict=True)]
    ratio = statistics.median(ratios)
    return {
        "corpus": {"bytes": dataset.size_bytes, "copies_of_tinyshakespeare": copies,
                   "documents": summary["n_documents"], "tokens": summary["tokens"]},
        "settings": settings,
        "speed": {
            "lab_seconds": [round(s, 3) for s in lab_s], "direct_seconds": [round(s, 3) for s in direct_s],
            "lab_phases_seconds": phases, "pair_ratios": [round(r, 4) for r in ratios],
            "median_ratio": round(ratio, 4), "goal": f">= {GOAL_RATIO}", "met": ratio >= GOAL_RATIO,
        },
    }
