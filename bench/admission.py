"""Admission overhead: from a device coming free to the next queued run's first training step, through
the lab (the run ends → admission sends the waiting run → the worker's pool takes it → the supervisor
starts the training process), against the same config started directly as `python -m training pretrain`
on the same machine, from its start to its first step. Both include the training process's own start
(imports, tokens); the difference is what the lab adds. Goal: at most 1 s, at the median of the pairs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lab import BenchLab
from bench.pretrain import THROUGHPUT_CONFIG, demo_cells, run_cell

CONFIG = {**THROUGHPUT_CONFIG, "context_length": 64, "batch_size": 8, "max_steps": 6, "warmup_steps": 1, "log_every": 1}


def _first_step_t(run) -> float:
    return min(e.t for e in run.events.filter(type="metric") if e.data.get("step", 0) >= 1)


def _through_the_lab(lab: BenchLab, first_cell, second_cell, user) -> tuple[float, dict]:
    """Queue two runs on the one worker; the second waits for the first. Seconds from the first's end
    to the second's first step, and the second's config (for the direct start)."""
    from lab.notebooks.actions import start_cell_run

    for cell in (first_cell, second_cell):
        cell.config = {**cell.config, **CONFIG}
        cell.save(update_fields=["config"])
    first = start_cell_run(first_cell, user)
    second = start_cell_run(second_cell, user)
    lab.wait(first)
    lab.wait(second)
    return _first_step_t(second) - first.finished_at.timestamp(), second.config


def _directly(config: dict) -> float:
    """Seconds from starting `python -m training pretrain` to its first step's metric event."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.json"
        path.write_text(json.dumps({**config, "output_dir": str(Path(tmp) / "run")}))
        started = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "training", "pretrain", "--config", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = None
        for line in proc.stdout:
            event = json.loads(line)
            if first is None and event.get("type") == "metric" and event.get("step", 0) >= 1:
                first = event["t"]
        proc.wait()
    return first - started


def main(pairs: int = 3) -> dict:
    with BenchLab() as lab:
        from lab.notebooks.models import Cell

        tokenizer, pretrain, user = demo_cells()
        run_cell(lab, tokenizer, user, vocab_size=2048)
        second = Cell.objects.create(notebook=pretrain.notebook, position=pretrain.position + 100, kind=pretrain.kind,
                                     title="second", config=pretrain.config)
        lab_s, direct_s = [], []
        for _ in range(pairs):  # interleaved, so that drift in the machine hits both alike
            through_lab, config = _through_the_lab(lab, pretrain, second, user)
            lab_s.append(through_lab)
            direct_s.append(_directly(config))
    added = [a - d for a, d in zip(lab_s, direct_s, strict=True)]
    median = statistics.median(added)
    return {"admission": {
        "config": CONFIG, "lab_free_to_first_step_s": lab_s, "direct_start_to_first_step_s": direct_s,
        "added_s": added, "median_added_s": median, "goal": "<= 1 s added", "met": median <= 1.0,
    }}
