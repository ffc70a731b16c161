"""Preference tuning (DPO) through the lab against trl's DPOTrainer run directly.

The base model is sft's bench model (bench/sft.py: a 2048-token ChatML BPE tokenizer trained on
tinyshakespeare and a random Llama of ~2.2M parameters); the data is the hh-rlhf sample's pairs with
their prompts split off (`hh-harmless-test-1811.prompt.jsonl`, its first PAIRS pairs), cut to
max_length tokens.

Throughput: the stage as the worker runs it (`python -m training dpo`, events to a file), interleaved
with `bench/dpo_bare.py` (DPOTrainer on the same model, data split, batch, loss and device, its
reference made by trl itself, no lab callback), ROUNDS pairs. Both are timed from the log at step
WARMUP_STEPS to the log at the last step, in non-pad tokens/s (chosen and rejected sequences both
count, as trl's `num_tokens` counts them); the lab from its own metric events. The score is the
median of the pairs' lab/bare ratios. On a GPU (`device: auto` picks it) the same runs go in bf16.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.sft import WARMUP_STEPS, build_base_model, lab_throughput, run_stage

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(os.environ.get("LAB_SAMPLE_DATA", ROOT / ".." / "shared" / "data")).resolve()
DATASET = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.prompt.jsonl"
ROUNDS = 4
PAIRS = 400
"""The sample's first pairs: trl tokenises every pair before training, and the timed steps read 40."""
BASE_CONFIG = {
    "dataset_path": str(DATASET), "device": "auto", "precision": "auto", "method": "full", "loss_type": "sigmoid",
    "max_length": 128, "batch_size": 4, "max_steps": 15, "warmup_steps": 3, "lr": 1e-4, "log_every": 5,
    "eval_every": 0, "val_fraction": 0.02, "checkpoint_every_steps": 0, "sample_prompts": ["Hello?"],
    "sample_tokens": 1,
}


def bare_throughput(config: dict[str, Any], folder: Path) -> float:
    config_path = folder / "bare.json"
    config_path.write_text(json.dumps(config))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "dpo_bare.py"), str(config_path),
                          "--from-step", str(WARMUP_STEPS)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def main() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp_name:
        tmp = Path(tmp_name)
        pairs = tmp / "pairs.jsonl"
        with DATASET.open(encoding="utf-8") as f:
            pairs.write_text("".join(itertools.islice(f, PAIRS)), encoding="utf-8")
        config = {**BASE_CONFIG, "dataset_path": str(pairs), "base_model": str(build_base_model(tmp))}
        lab_tps, bare_tps, runs = [], [], []
        for i in range(ROUNDS):  # interleaved, so that drift in the machine hits both alike
            run_dir = tmp / f"round-{i}"
            run_dir.mkdir()
            runs.append(run_stage({**config, "output_dir": str(run_dir / "lab")}, run_dir, "dpo"))
            lab_tps.append(lab_throughput(runs[-1]))
            bare_tps.append(bare_throughput({**config, "output_dir": str(run_dir / "bare")}, run_dir))
    ratios = [lab / bare for lab, bare in zip(lab_tps, bare_tps, strict=True)]
    ratio = statistics.median(ratios)
    summary = next(e for e in runs[0] if e["type"] == "status")["summary"]
    return {
        "throughput": {
            "config": BASE_CONFIG, "device": summary["device"], "precision": summary["precision"],
            "timed_steps": BASE_CONFIG["max_steps"] - WARMUP_STEPS, "lab_tokens_per_s": lab_tps,
            "bare_tokens_per_s": bare_tps, "pair_ratios": ratios, "median_ratio": ratio, "goal": ">= 0.95",
            "met": ratio >= 0.95,
        },
    }
