"""The baseline the dpo stage is measured against: trl's DPOTrainer script, run directly.

    python bench/dpo_bare.py RUN_CONFIG.json --from-step 5

Reads a dpo config, builds the same model, data split and trl `DPOConfig` arguments with the training
library's own helpers, and trains with DPOTrainer as trl's docs do: no reference model given (trl
makes its copy), no lab callback, no events, no samples, no evaluation, no checkpoints. Prints one
JSON line: non-pad tokens/s (trl's `num_tokens`) between the Trainer's log at step `--from-step` and
its log at the last step, as the lab's metric events measure it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from datasets import Dataset  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import DPOConfig, DPOTrainer  # noqa: E402

from training.base_model import load_base_model, load_base_tokenizer  # noqa: E402
from training.dpo_config import DpoConfig, read_rows  # noqa: E402
from training.runtime import pick_device, resolve_precision  # noqa: E402
from training.sft import loop_arguments, split_conversations  # noqa: E402


class Stopwatch(TrainerCallback):
    def __init__(self) -> None:
        self.marks: dict[int, tuple[float, float]] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs and "loss" in logs:
            self.marks[state.global_step] = (time.perf_counter(), logs["num_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--from-step", type=int, required=True)
    args = parser.parse_args()
    cfg = DpoConfig.from_dict(json.loads(args.config.read_text()))
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    tokenizer = load_base_tokenizer(cfg.base_model)
    _, rows = read_rows(cfg.dataset_path, cfg.dataset_format)
    train, _ = split_conversations(rows, cfg.val_fraction, cfg.seed)
    model, _ = load_base_model(cfg.base_model)
    trainer_args = DPOConfig(
        **loop_arguments(cfg, device, precision) | {"eval_strategy": "no", "save_strategy": "no"},
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        activation_checkpointing=False, max_length=cfg.max_length, beta=cfg.beta, loss_type=[cfg.loss_type],
    )
    stopwatch = Stopwatch()
    trainer = DPOTrainer(model=model, args=trainer_args, train_dataset=Dataset.from_list(train),
                         processing_class=tokenizer, callbacks=[stopwatch])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    (t0, tokens0), (t1, tokens1) = stopwatch.marks[args.from_step], stopwatch.marks[max(stopwatch.marks)]
    print(json.dumps({"tokens_per_s": (tokens1 - tokens0) / (t1 - t0), "seconds": t1 - t0}))


if __name__ == "__main__":
    main()
