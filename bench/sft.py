"""Supervised fine-tuning through the lab against trl run directly, and packing against padding.

The base model is built here: a byte-level BPE tokenizer (2048 tokens, ChatML) trained on
tinyshakespeare and a Llama decoder of ~2.2M parameters (192 wide, 4 layers, 512 positions), saved
as a Hugging Face folder. The data is the Dolly SFT sample (messages form), whose conversations run
from a few dozen to several hundred tokens.

Throughput: the stage as the worker runs it (`python -m training sft`, events to a file), interleaved
with `bench/sft_bare.py` (the same SFTTrainer on the same model, data, batch and device, no
callback), ROUNDS pairs. Both are timed from the log at step WARMUP_STEPS to the log at the last
step, in non-pad tokens/s; the lab from its own metric events (`t`, `tokens`). The score is the
median of the pairs' lab/bare ratios.

Packing: two runs of the stage on the same data, padded batches of PADDED_BATCH conversations
against packed rows (trl's best-fit decreasing packing, padding-free), the packed batch sized to
hold about as many real tokens per step, so that both see the same tokens in the same number of
steps. Score: real tokens/s of the packed run over the padded run; their eval losses (the same
held-out conversations, never packed) must agree within EVAL_LOSS_TOLERANCE.
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

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = Path(os.environ.get("LAB_SAMPLE_DATA", ROOT / ".." / "shared" / "data")).resolve()
DATASET = SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl"
CORPUS = SAMPLE_DATA / "corpora" / "tinyshakespeare.txt"
ROUNDS = 3
WARMUP_STEPS = 5
MAX_LENGTH = 512  # Dolly conversations run to ~650 tokens: a shorter cut hides most of the padding
PADDED_BATCH = 8
EVAL_LOSS_TOLERANCE = 0.05
"""Absolute difference allowed between the packed and the padded run's final eval loss (nats)."""
SHAPE = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
         "num_key_value_heads": 4, "max_position_embeddings": 512, "tie_word_embeddings": True}
BASE_CONFIG = {
    "dataset_path": str(DATASET), "device": "cpu", "precision": "fp32", "max_length": MAX_LENGTH,
    "batch_size": PADDED_BATCH, "max_steps": 30, "warmup_steps": 5, "lr": 1e-3, "log_every": 5,
    "eval_every": 0, "val_fraction": 0.02, "checkpoint_every_steps": 0, "sample_prompts": ["Hello?"],
    "sample_tokens": 1,
}


def build_base_model(folder: Path) -> Path:
    """A ChatML tokenizer and a random Llama of SHAPE, as a Hugging Face folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.checkpoint import hf_tokenizer
    from training.config import CHATML_SPECIAL_TOKENS, CHATML_TEMPLATE
    from training.events import EventReporter, EventWriter
    from training.tokenizer import train_tokenizer
    from training.tokenizer_config import TokenizerConfig

    with open(os.devnull, "w") as sink:
        tokenizer_path = train_tokenizer(TokenizerConfig(
            corpus_path=str(CORPUS), output_dir=str(folder / "tokenizer"), vocab_size=2048,
            special_tokens=["<|endoftext|>", "<|pad|>", *CHATML_SPECIAL_TOKENS], chat_template=CHATML_TEMPLATE,
        ), EventReporter(EventWriter(sink)))
    tokenizer = hf_tokenizer(tokenizer_path, SHAPE["max_position_embeddings"])
    config = LlamaConfig(**SHAPE, vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model_dir = folder / "base"
    LlamaForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return model_dir


def run_stage(config: dict[str, Any], folder: Path, stage: str = "sft") -> list[dict[str, Any]]:
    """`python -m training <stage>` with events to a file, as the worker runs it; its events."""
    config_path, events_path = folder / "run.json", folder / "events.jsonl"
    config_path.write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "training", stage, "--config", str(config_path), "--events",
                    str(events_path)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert events[-1].get("status") == "succeeded", events[-3:]
    return events


def lab_throughput(events: list[dict[str, Any]]) -> float:
    at = {e["step"]: (e["t"], e["values"]["tokens"]) for e in events
          if e["type"] == "metric" and "tokens" in e["values"]}
    (t0, tokens0), (t1, tokens1) = at[WARMUP_STEPS], at[max(at)]
    return (tokens1 - tokens0) / (t1 - t0)


def bare_throughput(config: dict[str, Any], folder: Path) -> float:
    config_path = folder / "bare.json"
    config_path.write_text(json.dumps(config))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "sft_bare.py"), str(config_path),
                          "--from-step", str(WARMUP_STEPS)], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"]


def final_eval_loss(events: list[dict[str, Any]]) -> float:
    return [e["values"]["val_loss"] for e in events if e["type"] == "metric" and "val_loss" in e["values"]][-1]


def mean_tokens_per_conversation(base: Path) -> float:
    """Tokens per conversation (chat template applied, cut at MAX_LENGTH), over the whole set."""
    from training.base_model import load_base_tokenizer
    from training.dataset_files import read_records

    tokenizer = load_base_tokenizer(base)
    lengths = [min(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"]),
                   MAX_LENGTH) for r in read_records(DATASET, "jsonl", "sft")]
    return statistics.fmean(lengths)


def main() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp_name:
        tmp = Path(tmp_name)
        base = build_base_model(tmp)
        config = {**BASE_CONFIG, "base_model": str(base)}
        lab_tps, bare_tps = [], []
        for i in range(ROUNDS):  # interleaved, so that drift in the machine hits both alike
            run_dir = tmp / f"round-{i}"
            run_dir.mkdir()
            lab_tps.append(lab_throughput(run_stage({**config, "output_dir": str(run_dir / "lab")}, run_dir)))
            bare_tps.append(bare_throughput({**config, "output_dir": str(run_dir / "bare")}, run_dir))

        mean_length = mean_tokens_per_conversation(base)
        packed_batch = max(1, round(PADDED_BATCH * mean_length / MAX_LENGTH))
        runs = {}
        for name, changes in {"padded": {}, "packed": {"packing": True, "batch_size": packed_batch}}.items():
            run_dir = tmp / name
            run_dir.mkdir()
            runs[name] = run_stage({**config, **changes, "output_dir": str(run_dir / "run")}, run_dir)

    ratios = [lab / bare for lab, bare in zip(lab_tps, bare_tps, strict=True)]
    ratio = statistics.median(ratios)
    padded_tps, packed_tps = lab_throughput(runs["padded"]), lab_throughput(runs["packed"])
    padded_loss, packed_loss = final_eval_loss(runs["padded"]), final_eval_loss(runs["packed"])
    speedup = packed_tps / padded_tps
    return {
        "throughput": {
            "config": BASE_CONFIG, "model_shape": SHAPE, "timed_steps": BASE_CONFIG["max_steps"] - WARMUP_STEPS,
            "lab_tokens_per_s": lab_tps, "bare_tokens_per_s": bare_tps, "pair_ratios": ratios,
            "median_ratio": ratio, "goal": ">= 0.95", "met": ratio >= 0.95,
        },
        "packing": {
            "mean_tokens_per_conversation": mean_length, "padded_batch": PADDED_BATCH, "packed_batch": packed_batch,
            "padded_real_tokens_per_s": padded_tps, "packed_real_tokens_per_s": packed_tps, "speedup": speedup,
            "padded_eval_loss": padded_loss, "packed_eval_loss": packed_loss,
            "eval_loss_tolerance": EVAL_LOSS_TOLERANCE,
            "goal": f">= 1.4x real tokens/s, eval losses within {EVAL_LOSS_TOLERANCE}",
            "met": speedup >= 1.4 and abs(packed_loss - padded_loss) <= EVAL_LOSS_TOLERANCE,
        },
    }
