"""The baseline the rl stage is measured against: the same trl GRPOTrainer script, run directly.

    python bench/grpo_bare.py RUN_CONFIG.json --from-step 3

Reads an rl config, builds the same model, prompts, reward functions and trl `GRPOConfig` with the
training library's own helpers, and trains with GRPOTrainer and no lab callback: no events, no
sample table, no evaluation, no checkpoints. Prints one JSON line: completions/s between the
Trainer's log at step `--from-step` and its log at the last step, as the lab's metric events
measure it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import PrinterCallback, TrainerCallback  # noqa: E402
from trl import GRPOTrainer  # noqa: E402

from training.base_model import load_base_model, load_base_tokenizer  # noqa: E402
from training.prompts import read_prompts  # noqa: E402
from training.rewards import reward_functions  # noqa: E402
from training.rl import as_dataset, fitting_prompts, trainer_config  # noqa: E402
from training.rl_config import RlConfig  # noqa: E402
from training.runtime import pick_device, resolve_precision  # noqa: E402
from training.sampling import stop_token_ids  # noqa: E402
from training.sft import split_conversations  # noqa: E402


class Stopwatch(TrainerCallback):
    def __init__(self) -> None:
        self.marks: dict[int, float] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.marks[state.global_step] = time.time()


class Silent:
    def log(self, message: str, level: str = "info") -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--from-step", type=int, required=True)
    args = parser.parse_args()
    cfg = RlConfig.from_dict(json.loads(args.config.read_text()))
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    specs = cfg.reward_specs()
    tokenizer = load_base_tokenizer(cfg.base_model)
    model, info = load_base_model(cfg.base_model, dtype=torch.float32)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
    prompts = read_prompts(cfg.dataset_path, cfg.dataset_format, cfg.max_prompts, "dataset_path")
    prompts = fitting_prompts(prompts, tokenizer, True, info.context_length, cfg.max_completion_length, Silent())
    train, _ = split_conversations(prompts, cfg.val_fraction, cfg.seed)
    trainer_args = trainer_config(cfg, device, precision, specs)
    trainer_args.eval_strategy, trainer_args.save_strategy = "no", "no"
    stopwatch = Stopwatch()
    trainer = GRPOTrainer(model=model, reward_funcs=reward_functions(specs), args=trainer_args,
                          train_dataset=as_dataset(train, chat=True), processing_class=tokenizer, callbacks=[stopwatch])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    t0, t1, last = stopwatch.marks[args.from_step], stopwatch.marks[max(stopwatch.marks)], max(stopwatch.marks)
    completions = cfg.batch_size * cfg.num_generations * cfg.grad_accum * (last - args.from_step)
    print(json.dumps({"completions_per_s": completions / (t1 - t0), "seconds": t1 - t0}))


if __name__ == "__main__":
    main()
