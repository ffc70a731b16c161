"""MMLU-500 by log-likelihood through the evaluate stage against the same scoring written directly.

The tokenizer is bench/sft.py's (2048-token ChatML BPE trained on tinyshakespeare); the model a random
Llama of SHAPE (~0.3M parameters, 512 positions), small so that 500 questions × 4 choices score in a
minute on a shared CPU and the lab's own costs (events, per-example rows, metrics) weigh the most they
can. Random weights score near chance, which is fine: the benchmark measures the lab's overhead, and the
two must agree on every score.

The stage runs as the worker runs it (`python -m training evaluate`, events to a file), interleaved with
`bench/evaluate_bare.py` (the same prompts and scoring in one process: no events, no intervals, no
per-example file), ROUNDS pairs, on the same device and batch size. The lab is timed from its `running`
status (questions read, model not yet loaded) to its `artifact` event; the bare script from loading the
model to its last score. Each process runs one torch thread (THREADS): on a shared machine a second
thread mostly adds noise to the timing. Score: the median of the pairs' bare/lab time ratios (the lab's
share of the bare speed), goal ≥ 0.95; acc and acc_norm must be the same in both.
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

from bench.sft import SAMPLE_DATA, build_base_model

ROOT = Path(__file__).resolve().parent.parent
MMLU = SAMPLE_DATA / "eval" / "mmlu-test-500.jsonl"
ROUNDS = 3
THREADS = "1"
BATCH_SIZE = 16
SHAPE = {"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 512, "tie_word_embeddings": True}
CONFIG = {"dataset_path": str(MMLU), "max_examples": 500, "batch_size": BATCH_SIZE, "device": "cpu",
          "precision": "fp32", "bootstrap_samples": 1000}


ENV = {**os.environ, "OMP_NUM_THREADS": THREADS, "HF_HUB_OFFLINE": "1"}


def build_model(folder: Path) -> Path:
    """bench/sft.py's tokenizer beside a random Llama of SHAPE."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(build_base_model(folder))
    config = LlamaConfig(**SHAPE, vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model_dir = folder / "small"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def run_stage(config: dict[str, Any], folder: Path) -> tuple[float, dict[str, float]]:
    """`python -m training evaluate` as the worker runs it: its seconds from `running` to `artifact`, and its metrics."""
    config_path, events_path = folder / "run.json", folder / "events.jsonl"
    config_path.write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "training", "evaluate", "--config", str(config_path), "--events",
                    str(events_path)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=ENV)
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert events[-1].get("status") == "succeeded", events[-3:]
    started = next(e["t"] for e in events if e["type"] == "status" and e["status"] == "running")
    artifact = next(e for e in events if e["type"] == "artifact")
    metrics = artifact["metadata"]["models"][0]["metrics"]
    return artifact["t"] - started, {name: metrics[name]["value"] for name in ("acc", "acc_norm")}


def run_bare(model: Path) -> tuple[float, dict[str, float]]:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "evaluate_bare.py"), str(model), str(MMLU),
                          "--batch-size", str(BATCH_SIZE)], cwd=ROOT, capture_output=True, text=True, check=True, env=ENV)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["seconds"], {"acc": result["acc"], "acc_norm": result["acc_norm"]}


def main() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as tmp_name:
        tmp = Path(tmp_name)
        model = build_model(tmp)
        config = {**CONFIG, "models": [{"path": str(model), "label": "base", "artifact": None}]}
        lab_s, bare_s, lab_scores, bare_scores = [], [], [], []
        for i in range(ROUNDS):  # interleaved, so that drift in the machine hits both alike
            run_dir = tmp / f"round-{i}"
            run_dir.mkdir()
            seconds, scores = run_stage({**config, "output_dir": str(run_dir / "lab")}, run_dir)
            lab_s.append(seconds)
            lab_scores.append(scores)
            seconds, scores = run_bare(model)
            bare_s.append(seconds)
            bare_scores.append(scores)
    ratios = [bare / lab for lab, bare in zip(lab_s, bare_s, strict=True)]
    ratio = statistics.median(ratios)
    same = all(lab == bare for lab, bare in zip(lab_scores, bare_scores, strict=True))
    return {
        "mmlu_loglikelihood": {
            "config": CONFIG, "model_shape": SHAPE, "threads": int(THREADS), "questions": 500,
            "lab_seconds": lab_s, "bare_seconds": bare_s, "pair_ratios": ratios,
            "median_ratio": ratio, "lab_scores": lab_scores[0], "bare_scores": bare_scores[0], "same_scores": same,
            "goal": ">= 0.95 and the same acc and acc_norm", "met": ratio >= 0.95 and same,
        },
    }
