"""Pretraining through the lab against a bare loop, and event latency to a websocket client.

Throughput: the demo notebook's pretrain cell runs on a real worker (Celery task → child process →
JSON-line events → database + Channels), interleaved with `bench/pretrain_bare.py` on the same config
and tokens, five pairs. Both are timed from the end of step WARMUP_STEPS to the end of the last step, each with a
host sync at both ends: the lab from its own metric events' timestamps, the bare loop with time.time().

Latency: a run that reports every step, watched by a websocket client logged in as the demo user;
each live event's latency is its arrival time minus the `t` the training process stamped on it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.lab import BenchLab

BENCH_DIR = Path(__file__).resolve().parent
WARMUP_STEPS = 20
# What the lab adds per step must stay small next to the step itself; eval, samples and
# checkpoints are switched off because the bare loop does none of them.
THROUGHPUT_CONFIG = {
    "preset": "tiny", "context_length": 256, "batch_size": 16, "grad_accum": 1, "max_steps": 140,
    "warmup_steps": 10, "log_every": 10, "eval_every": 0, "sample_every": 0, "checkpoint_every_steps": 0,
    "checkpoint_every_minutes": 0, "eval_batches": 1,
}
LATENCY_CONFIG = {**THROUGHPUT_CONFIG, "context_length": 64, "batch_size": 8, "max_steps": 300, "log_every": 1}


def demo_cells():
    from django.core.management import call_command

    from lab.notebooks.models import Cell

    call_command("seed_demo", stdout=open("/dev/null", "w"))
    cells = {c.kind: c for c in Cell.objects.filter(notebook__title="Tiny Shakespeare from scratch")}
    return cells["tokenizer"], cells["pretrain"], cells["tokenizer"].notebook.created_by


def run_cell(lab: BenchLab, cell, user, **config):
    from lab.notebooks.actions import start_cell_run

    cell.config = {**cell.config, **config}
    cell.save(update_fields=["config"])
    return lab.wait(start_cell_run(cell, user))


def lab_throughput(run) -> float:
    at = {e.data["step"]: (e.t, e.data["values"]["tokens"]) for e in run.events.filter(type="metric")
          if "tokens" in e.data.get("values", {})}
    (t0, tokens0), (t1, tokens1) = at[WARMUP_STEPS], at[max(at)]
    return (tokens1 - tokens0) / (t1 - t0)


def bare_throughput(run) -> float:
    config = Path(run.config["output_dir"]) / "attempt-1.json"
    out = subprocess.run([sys.executable, str(BENCH_DIR / "pretrain_bare.py"), str(config),
                          "--from-step", str(WARMUP_STEPS)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def event_latencies(lab: BenchLab, cell, user) -> list[float]:
    from django.test import Client
    from websockets.sync.client import connect

    from lab.notebooks.actions import start_cell_run

    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    cell.config = {**cell.config, **LATENCY_CONFIG}
    cell.save(update_fields=["config"])
    run = start_cell_run(cell, user)
    latencies: list[float] = []

    def listen():
        url = lab.base_url.replace("http", "ws") + f"/ws/runs/{run.pk}/"
        with connect(url, additional_headers={"Cookie": cookie, "Origin": lab.base_url}) as ws:
            for message in ws:
                arrived = time.time()
                payload = json.loads(message)
                if not payload.get("replay"):
                    latencies.extend(arrived - e["t"] for e in payload["events"])
                if payload["run"]["status"] in ("succeeded", "failed", "cancelled", "lost"):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    lab.wait(run)
    listener.join(timeout=30)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main(repeats: int = 5) -> dict:
    with BenchLab() as lab:
        tokenizer, pretrain, user = demo_cells()
        run_cell(lab, tokenizer, user, vocab_size=2048)
        lab_tps, bare_tps = [], []
        for _ in range(repeats):  # interleaved, so that drift in the machine hits both alike
            run = run_cell(lab, pretrain, user, **THROUGHPUT_CONFIG)
            lab_tps.append(lab_throughput(run))
            bare_tps.append(bare_throughput(run))
        latencies = event_latencies(lab, pretrain, user)
    # Each pair ran back to back, so its ratio cancels the machine's slow drift; the median of the
    # pairs' ratios is the estimate, and their spread says how far to trust it.
    ratios = [lab / bare for lab, bare in zip(lab_tps, bare_tps, strict=True)]
    ratio = statistics.median(ratios)
    p50, p95 = percentile(latencies, 50) * 1000, percentile(latencies, 95) * 1000
    return {
        "throughput": {
            "config": THROUGHPUT_CONFIG, "timed_steps": THROUGHPUT_CONFIG["max_steps"] - WARMUP_STEPS,
            "lab_tokens_per_s": lab_tps, "bare_tokens_per_s": bare_tps,
            "pair_ratios": ratios, "median_ratio": ratio, "goal": ">= 0.97", "met": ratio >= 0.97,
        },
        "event_latency_ms": {
            "events": len(latencies), "p50": p50, "p95": p95, "max": max(latencies) * 1000,
            "goal": "p95 <= 250", "met": p95 <= 250,
        },
    }
