"""The baseline the sft stage is measured against: the same trl SFTTrainer script, run directly.

    python bench/sft_bare.py RUN_CONFIG.json --from-step 10

Reads an sft config, builds the same model, data split, tokenizer template and trl `SFTConfig`
with the training library's own helpers, and trains with SFTTrainer and no lab callback: no events,
no samples, no evaluation, no checkpoints. Prints one JSON line: non-pad tokens/s between the
Trainer's log at step `--from-step` and its log at the last step (both after the log's host sync),
as the lab's metric events measure it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import SFTTrainer  # noqa: E402

from training.base_model import load_base_model, load_base_tokenizer  # noqa: E402
from training.dataset_files import read_records  # noqa: E402
from training.runtime import pick_device, resolve_precision  # noqa: E402
from training.sft import (  # noqa: E402
    as_dataset,
    choose_loss_mode,
    split_conversations,
    trainer_config,
)
from training.sft_config import SftConfig  # noqa: E402


class Stopwatch(TrainerCallback):
    def __init__(self, from_step: int) -> None:
        self.from_step = from_step
        self.marks: dict[int, tuple[float, float]] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs and "loss" in logs:
            self.marks[state.global_step] = (time.time(), logs["num_tokens"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--from-step", type=int, required=True)
    args = parser.parse_args()
    cfg = SftConfig.from_dict(json.loads(args.config.read_text()))
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    tokenizer = load_base_tokenizer(cfg.base_model)
    loss_mode = choose_loss_mode(cfg, tokenizer)
    conversations = [r["messages"] for r in read_records(cfg.dataset_path, cfg.dataset_format, "sft")]
    train, _ = split_conversations(conversations, cfg.val_fraction, cfg.seed)
    model, _ = load_base_model(cfg.base_model)
    trainer_args = trainer_config(cfg, device, precision, loss_mode)
    trainer_args.eval_strategy, trainer_args.save_strategy = "no", "no"
    stopwatch = Stopwatch(args.from_step)
    trainer = SFTTrainer(model=model, args=trainer_args, train_dataset=as_dataset(train, loss_mode),
                         processing_class=tokenizer, callbacks=[stopwatch])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    (t0, tokens0), (t1, tokens1) = stopwatch.marks[args.from_step], stopwatch.marks[max(stopwatch.marks)]
    print(json.dumps({"tokens_per_s": (tokens1 - tokens0) / (t1 - t0), "seconds": t1 - t0}))


if __name__ == "__main__":
    main()
