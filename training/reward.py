"""The reward stage: a base model gets a one-output score head and learns which of two answers people
prefer, with trl's RewardTrainer (loss -log σ(r_chosen - r_rejected - margin)); and the scorer that
reads such a model (`load_reward_scorer`), for the RL stage, the judge and the lab's score box.

Shape (as every stage's: training/stages.py): `setup` reads and splits the pairs, renders and
tokenizes each prompt + answer the way the scorer does (`encode`), loads the model (full or LoRA)
and builds the trainer; `fit` trains it with a ReporterCallback (loss, pairwise accuracy, cancel),
scores the held-out pairs and reports the model with their rewards (for the cell's histogram).

One rendering for training and scoring: a prompt (a string, or messages) and an answer go through
the tokenizer's chat template when it has one (a string prompt as one user message), else they are
joined as text with the eos token after; the tokens are cut from the left to `max_length`, so the
answer's end, where the score head reads, stays. Pairs are tokenized here, so trl neither re-renders
them nor drops the long ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PrinterCallback,
)
from transformers.utils import logging as hf_logging
from trl import RewardConfig as TrlRewardConfig
from trl import RewardTrainer

from training.base_model import load_base_model, load_base_tokenizer
from training.checkpoint_layout import checkpoint_step, resolve_checkpoint
from training.config import ConfigError
from training.dataset_files import read_records
from training.events import Reporter
from training.reward_config import RewardConfig
from training.runtime import pick_device, resolve_precision, seed_everything
from training.sft import export_weights, loop_arguments, lora_config, split_conversations
from training.stage_shape import setup_then_fit
from training.trainer_events import ReporterCallback

Prompt = str | list[dict[str, str]]
Answer = str | list[dict[str, str]]
HELD_OUT_REWARDS_KEPT = 500
"""Held-out pairs whose two rewards the artifact keeps for the histogram (the accuracy counts all)."""
SCORE_BATCH = 8
TRAIN_LOG_KEYS = {"accuracy": "accuracy", "margin": "margin"}


@dataclass
class RewardRun:
    """Everything `setup` made for training and the final report."""

    cfg: RewardConfig
    reporter: Reporter
    trainer: RewardTrainer
    callback: ReporterCallback
    tokenizer: PreTrainedTokenizerBase
    held_out: list[dict[str, Any]]
    """The held-out pairs, tokenized: `chosen_ids`, `rejected_ids` (and `margin`)."""
    n_train: int
    resume_dir: Path | None


def run_reward(cfg: RewardConfig, reporter: Reporter) -> Path | None:
    """Train to `cfg.max_steps`; return the folder of the reward model, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: RewardConfig, reporter: Reporter) -> RewardRun:
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None

    tokenizer = load_base_tokenizer(cfg.base_model)
    # Saved with every checkpoint: the scorer cuts prompt + answer where training did.
    tokenizer.model_max_length = cfg.max_length
    pairs = list(read_records(cfg.dataset_path, cfg.dataset_format, "preference"))
    if any(isinstance(p["prompt"], list) for p in pairs) and not tokenizer.chat_template:
        raise ConfigError("dataset", f"holds conversations, and the model in {Path(cfg.base_model).name} has no chat "
                                     "template to render them with")
    train, held_out = split_conversations(pairs, cfg.val_fraction, cfg.seed)
    margins = any("margin" in p for p in pairs)
    train_rows = [encode_pair(tokenizer, p, cfg.max_length, margins) for p in train]
    held_out_rows = [encode_pair(tokenizer, p, cfg.max_length, margins) for p in held_out]

    seed_everything(cfg.seed)  # before the model: the new head's initial weights come from this seed
    model = load_reward_model(cfg.base_model, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    callback = ReporterCallback(
        reporter,
        summary={
            "task": "reward", "method": cfg.method, "params": n_params, "train_pairs": len(train_rows),
            "val_pairs": len(held_out_rows), "margin": margins, "device": device.type, "precision": precision,
            "max_length": cfg.max_length,
        },
        on_cuda=device.type == "cuda",
        eval_values=reward_eval,
        log_keys=TRAIN_LOG_KEYS,
    )
    trainer = RewardTrainer(
        model=model,
        args=trainer_config(cfg, device, precision),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(held_out_rows),
        processing_class=tokenizer,
        peft_config=lora_config(cfg, "SEQ_CLS", modules_to_save=["score"]) if cfg.method == "lora" else None,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the events carry them
    callback.summary["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return RewardRun(cfg, reporter, trainer, callback, tokenizer, held_out_rows, len(train_rows), resume_dir)


def fit(run: RewardRun) -> Path | None:
    """Train, score the held-out pairs and report the reward model."""
    reporter, trainer = run.reporter, run.trainer
    start_step = checkpoint_step(run.resume_dir) if run.resume_dir else 0
    if run.resume_dir:
        reporter.log(f"resuming from {run.resume_dir} at step {start_step}")
    if reporter.should_stop():
        reporter.status("cancelled", step=start_step, summary={})
        return None
    trainer.train(resume_from_checkpoint=str(run.resume_dir) if run.resume_dir else None)
    step = trainer.state.global_step
    if run.callback.stopped:
        reporter.status("cancelled", step=step, summary=dict(run.callback.last))
        return None

    held_out = held_out_report(trainer.model, run.tokenizer, run.held_out)
    cfg = run.cfg
    final, saved = export_weights(trainer, run.tokenizer, cfg.output_dir, cfg.method, cfg.base_model, merge_lora=True)
    metadata = {
        "task": "reward", "method": cfg.method, "step": step, "base_model": cfg.base_model,
        "params": run.callback.summary["params"], "train_pairs": run.n_train, "val_pairs": len(run.held_out),
        "max_length": cfg.max_length, "held_out": held_out, **saved,
    }
    reporter.artifact("checkpoint", str(final), metadata)
    summary = {"task": "reward", "held_out_accuracy": held_out["accuracy"], "held_out_margin": held_out["mean_margin"]}
    reporter.status("succeeded", step=step, summary={**run.callback.last, **summary})
    return final


def held_out_report(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, rows: list[dict[str, Any]]
                    ) -> dict[str, Any]:
    """Pairwise accuracy and mean reward margin over every held-out pair, and the rewards of the first
    HELD_OUT_REWARDS_KEPT pairs (four decimals) for the histogram of chosen vs rejected."""
    chosen = rewards_of(model, [r["chosen_ids"] for r in rows], tokenizer.pad_token_id)
    rejected = rewards_of(model, [r["rejected_ids"] for r in rows], tokenizer.pad_token_id)
    kept = slice(0, HELD_OUT_REWARDS_KEPT)
    return {
        "pairs": len(rows),
        "accuracy": sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(rows),
        "mean_margin": sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(rows),
        "chosen": [round(v, 4) for v in chosen[kept]],
        "rejected": [round(v, 4) for v in rejected[kept]],
    }


def load_reward_model(base_model: str, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The base with a fresh one-output `score` head; master weights fp32."""
    model, _ = load_base_model(base_model, AutoModelForSequenceClassification, num_labels=1, dtype=torch.float32)
    # The head reads the hidden state of each row's last non-pad token, found through this id.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def trainer_config(cfg: RewardConfig, device: torch.device, precision: str) -> TrlRewardConfig:
    return TrlRewardConfig(
        **loop_arguments(cfg, device, precision),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        activation_checkpointing=False,  # trl's default is on: a third slower, for memory a reward model rarely needs
        max_length=None,  # pairs come tokenized and cut (encode): trl would drop the long ones
        center_rewards_coefficient=cfg.center_rewards or None,
        dataloader_pin_memory=device.type == "cuda",
    )


def reward_eval(metrics: dict[str, float]) -> dict[str, float]:
    return {"val_loss": metrics["eval_loss"], "val_accuracy": metrics["eval_accuracy"],
            "val_margin": metrics["eval_margin"]}


def render(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, answer: Answer) -> str:
    """The text a reward is read from (see the module's docstring)."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        messages += [{"role": "assistant", "content": answer}] if isinstance(answer, str) else answer
        return tokenizer.apply_chat_template(messages, tokenize=False)
    if not isinstance(prompt, str) or not isinstance(answer, str):
        raise ValueError("conversations need a chat template, and this tokenizer has none")
    return prompt + answer + tokenizer.eos_token


def encode(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, answer: Answer, max_length: int) -> list[int]:
    """The token ids of `render`, the last `max_length` of them."""
    text = render(tokenizer, prompt, answer)
    # A chat template writes its own special tokens; plain text gets the tokenizer's (a BOS, say).
    ids = tokenizer(text, add_special_tokens=not tokenizer.chat_template, verbose=False)["input_ids"]
    return ids[-max_length:]


def encode_pair(tokenizer: PreTrainedTokenizerBase, pair: dict[str, Any], max_length: int, margins: bool
                ) -> dict[str, Any]:
    """trl's tokenized pair; with `margins`, a pair without one has 0 (no margin)."""
    row = {key: encode(tokenizer, pair["prompt"], pair[key.removesuffix("_ids")], max_length)
           for key in ("chosen_ids", "rejected_ids")}
    if margins:
        row["margin"] = pair.get("margin", 0.0)
    return row


@torch.inference_mode()
def rewards_of(model: torch.nn.Module, sequences: Sequence[list[int]], pad_token_id: int,
               batch_size: int = SCORE_BATCH) -> list[float]:
    """The model's reward of each token sequence, batch by batch (padded on the right)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rewards: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            attention_mask[i, :len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        rewards += logits[:, 0].float().tolist()
    model.train(was_training)
    return rewards


class RewardScorer:
    """A reward model ready to score: `score(prompts, responses)` → one reward per pair."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length

    def score(self, prompts: Sequence[Prompt], responses: Sequence[str], batch_size: int = SCORE_BATCH) -> list[float]:
        """The reward of each response to its prompt (a string or messages), rendered as in training."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses: one response per prompt")
        sequences = [encode(self.tokenizer, p, r, self.max_length) for p, r in zip(prompts, responses, strict=True)]
        rewards = rewards_of(self.model, sequences, self.tokenizer.pad_token_id, batch_size)
        if not all(math.isfinite(r) for r in rewards):
            raise ValueError("the reward model gave a reward that is not a finite number")
        return rewards


def load_reward_scorer(path: str | Path, device: str | torch.device | None = None) -> RewardScorer:
    """The reward model in the folder `path` (a reward run's artifact: one output, `num_labels=1`), on
    `device`; None is the CPU, since a worker that answers requests must not initialise CUDA."""
    tokenizer = load_base_tokenizer(path, field="model")
    model, info = load_base_model(path, AutoModelForSequenceClassification, field="model", dtype=torch.float32)
    if model.config.num_labels != 1:
        raise ConfigError("model", f"{Path(path).name} has {model.config.num_labels} outputs; a reward model has one")
    if model.config.pad_token_id is None:  # the head finds each row's last token through it
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(torch.device(device or "cpu")).eval()
    # The reward stage saves its max_length as the tokenizer's model_max_length.
    max_length = min(info.context_length or tokenizer.model_max_length, tokenizer.model_max_length)
    return RewardScorer(model, tokenizer, max_length)


@lru_cache(maxsize=2)
def cached_scorer(path: str) -> RewardScorer:
    """A scorer kept per folder (two at most, least recently used dropped), for a worker that answers
    many requests with the same model."""
    return load_reward_scorer(path)


def score_texts(model_dir: str, prompts: list[Prompt], responses: list[str]) -> list[float]:
    """The rewards of the responses to their prompts by the reward model in `model_dir` (on the CPU)."""
    return cached_scorer(str(Path(model_dir).resolve())).score(prompts, responses)
