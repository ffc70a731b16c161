"""Reinforcement learning (GRPO) through the lab against trl's GRPOTrainer run directly.

The base model is sft's bench model (bench/sft.py: a 2048-token ChatML BPE tokenizer trained on
tinyshakespeare and a random Llama of ~2.2M parameters); the prompts are the Dolly SFT sample's
(each conversation up to its last reply), the rewards two rules, weighted: the answer holds no line
break (a regular expression) and its length is near 16 tokens.

Throughput: the stage as the worker runs it (`python -m training rl`, events to a file), interleaved
with `bench/grpo_bare.py` (GRPOTrainer on the same model, prompts, rewards, batch and device, no lab
callback), ROUNDS pairs. Both are timed from the log at step WARMUP_STEPS to the log at the last
step, in completions (answers generated and scored) per second; every step generates the same
number of answers. The score is the median of the pairs' lab/bare ratios. On a GPU (`device: auto`
picks it) the same runs go in bf16.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.sft import build_base_model, run_stage

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(os.environ.get("LAB_SAMPLE_DATA", ROOT / ".." / "shared" / "data")).resolve()
DATASET = SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl"
ROUNDS = 3
WARMUP_STEPS = 2
BASE_CONFIG = {
    "dataset_path": str(DATASET), "device": "auto", "precision": "auto", "method": "full",
    "rewards": [{"kind": "regex", "weight": 1.0, "pattern": r"^[^\n]*$"}, {"kind": "length", "weight": 0.5, "target": 16}],
    "max_prompts": 64, "num_generations": 4, "max_completion_length": 16, "beta": 0.04, "batch_size": 2,
    "max_steps": 8, "lr": 1e-5, "log_every": 1, "eval_every": 0, "val_fraction": 0.02, "checkpoint_every_steps": 0,
}
COMPLETIONS_PER_STEP = BASE_CONFIG["batch_size"] * BASE_CONFIG["num_generations"]


def lab_throughput(events: list[dict[str, Any]]) -> float:
    at = {e["step"]: e["t"] for e in events if e["type"] == "metric" and "reward" in e["values"]}
    return COMPLETIONS_PER_STEP * (max(at) - WARMUP_STEPS) / (at[max(at)] - at[WARMUP_STEPS])


def bare_throughput(config: dict[str, Any], folder: Path) -> float:
    config_path = folder / "bare.json"
    config_path.write_text(json.dumps(config))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "grpo_bare.py"), str(config_path),
                          "--from-step", str(WARMUP_STEPS)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["completions_per_s"]


def main() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-grpo-") as tmp_name:
        tmp = Path(tmp_name)
        config = {**BASE_CONFIG, "base_model": str(build_base_model(tmp))}
        lab_cps, bare_cps, precision = [], [], None
        for i in range(ROUNDS):  # interleaved, so that drift in the machine hits both alike
            run_dir = tmp / f"round-{i}"
            run_dir.mkdir()
            events = run_stage({**config, "output_dir": str(run_dir / "lab")}, run_dir, stage="rl")
            summary = next(e["summary"] for e in events if e.get("status") == "running")
            precision = f"{summary['precision']} on {summary['device']}"
            lab_cps.append(lab_throughput(events))
            bare_cps.append(bare_throughput({**config, "output_dir": str(run_dir / "bare")}, run_dir))

    ratios = [lab / bare for lab, bare in zip(lab_cps, bare_cps, strict=True)]
    ratio = statistics.median(ratios)
    return {
        "throughput": {
            "config": BASE_CONFIG, "precision": precision, "timed_steps": BASE_CONFIG["max_steps"] - WARMUP_STEPS,
            "completions_per_step": COMPLETIONS_PER_STEP, "lab_completions_per_s": lab_cps,
            "bare_completions_per_s": bare_cps, "pair_ratios": ratios, "median_ratio": ratio, "goal": ">= 0.95",
            "met": ratio >= 0.95,
        },
    }
