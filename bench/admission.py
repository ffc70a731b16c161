"""Admission overhead: from a device coming free to the next queued run's first training step, through
the lab (the run ends → admission sends the waiting run → the worker's pool takes it → the supervisor
starts the training process), against the same config started directly as `python -m training pretrain`
on the same machine, from its start to its first step. Both include the training process's own start
(imports, tokens); the difference is what the lab adds. Goal: at most 1 s, at the median of the pairs."""

from __future__ import annotations

import json
import os
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


def _phases(first, second) -> dict[str, float]:
    """Where the seconds from the first run's end to the second's first step went, as the lab recorded
    them: admitted (the run sent to the broker), claimed (the worker's pool process took the message
    and the run's lease), launched (the supervisor started the training process), and the training
    process's own start up to its first step, which the direct start has too."""
    launched = second.events.get(type="status", data__status="running", data__message="started").t
    ends = {"admitted": second.admitted_at.timestamp(), "claimed": second.started_at.timestamp(),
            "launched": launched, "first_step": _first_step_t(second)}
    phases, before = {}, first.finished_at.timestamp()
    for name, t in ends.items():
        phases[name] = t - before
        before = t
    return phases


def _through_the_lab(lab: BenchLab, first_cell, second_cell, user) -> tuple[float, dict, dict]:
    """Queue two runs on the one worker; the second waits for the first. Seconds from the first's end
    to the second's first step, its phases, and the second's config (for the direct start)."""
    from lab.notebooks.actions import start_cell_run

    for cell in (first_cell, second_cell):
        cell.config = {**cell.config, **CONFIG}
        cell.save(update_fields=["config"])
    first = start_cell_run(first_cell, user)
    second = start_cell_run(second_cell, user)
    lab.wait(first)
    lab.wait(second)
    return _first_step_t(second) - first.finished_at.timestamp(), _phases(first, second), second.config


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
    load_before = os.getloadavg()[0]
    with BenchLab() as lab:
        from lab.notebooks.models import Cell

        tokenizer, pretrain, user = demo_cells()
        run_cell(lab, tokenizer, user, vocab_size=2048)
        second = Cell.objects.create(notebook=pretrain.notebook, position=pretrain.position + 100, kind=pretrain.kind,
                                     title="second", config=pretrain.config)
        lab_s, direct_s, phases = [], [], []
        for _ in range(pairs):  # interleaved, so that drift in the machine hits both alike
            through_lab, run_phases, config = _through_the_lab(lab, pretrain, second, user)
            lab_s.append(through_lab)
            phases.append(run_phases)
            direct_s.append(_directly(config))
    added = [a - d for a, d in zip(lab_s, direct_s, strict=True)]
    median = statistics.median(added)
    return {"admission": {
        "config": CONFIG, "lab_free_to_first_step_s": lab_s, "direct_start_to_first_step_s": direct_s,
        "added_s": added, "median_added_s": median, "goal": "<= 1 s added", "met": median <= 1.0,
        "lab_phases_s": phases,
        "median_phases_s": {name: statistics.median(p[name] for p in phases) for name in phases[0]},
        # The lab's own part, without the training process's start (which both sides pay, with the noise of a shared machine).
        "median_free_to_launch_s": statistics.median(p["admitted"] + p["claimed"] + p["launched"] for p in phases),
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }}
