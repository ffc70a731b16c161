"""The rl stage: reinforcement learning of a causal LM against weighted rewards, with trl's
GRPOTrainer (training/rl_config.py says what a run takes; training/rewards.py the rewards).

Shape (as every stage's: training/stages.py): `setup` loads the policy, its prompts (with their
reference answers) and the reward functions and builds the trainer; `fit` trains it with a
ReporterCallback (loss, lr, tokens/s, the reward metrics by their lab names; cancel) and an
`RlCallback` (a table of sample answers with each reward, completions per second), then exports the
policy as sft does.

GRPO rather than RLOO (trl has both, with the same reward functions): GRPO's group baseline, its
per-group scaling and its KL term toward a reference (`beta`) are what the cell's form exposes;
RLOO's leave-one-out baseline serves better at two answers a prompt, where GRPO's per-group scaling
turns every pair's rewards into ±1, and it folds the KL into the reward instead. Both use the same
`num_generations` groups, so the lab runs one of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets import Dataset
from transformers import (
    PreTrainedTokenizerBase,
    PrinterCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging
from trl import GRPOConfig, GRPOTrainer

from training.base_model import load_base_model, load_base_tokenizer
from training.checkpoint_layout import resolve_checkpoint
from training.config import ConfigError
from training.events import Reporter
from training.model_info import ModelInfo
from training.prompts import Prompt, read_prompts
from training.rewards import REWARD_MODEL, RewardSpec, completion_text, reward_functions
from training.rl_config import RlConfig
from training.runtime import pick_device, resolve_precision, weights_dtype
from training.sampling import stop_token_ids
from training.sft import export_weights, loop_arguments, lora_config, split_conversations
from training.stage_shape import setup_then_fit
from training.trainer_events import ReporterCallback, tokens_seen, train_to_the_end

SAMPLE_ROWS = 8
"""Answers shown per log at most: the first prompt's group (up to this many), so their rewards compare."""
SAMPLE_CHARS = 2000


@dataclass
class RlRun:
    """Everything `setup` made for training and export."""

    cfg: RlConfig
    trainer: GRPOTrainer
    tokenizer: PreTrainedTokenizerBase
    callback: ReporterCallback
    info: ModelInfo
    resume_dir: Path | None


def run_rl(cfg: RlConfig, reporter: Reporter) -> Path | None:
    """Train; return the artifact's folder, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: RlConfig, reporter: Reporter) -> RlRun:
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None
    specs = cfg.reward_specs()

    tokenizer = load_base_tokenizer(cfg.base_model)
    # A frozen LoRA base is held in the run's half precision, if it has one.
    model, info = load_base_model(cfg.base_model, dtype=weights_dtype(precision) if cfg.method == "lora" else torch.float32)
    chat = bool(tokenizer.chat_template)
    prompts = read_prompts(cfg.dataset_path, cfg.dataset_format, cfg.max_prompts, "dataset_path")
    _check_references(specs, prompts)
    if info.context_length is not None:
        prompts = fitting_prompts(prompts, tokenizer, chat, info.context_length, cfg.max_completion_length, reporter)
    train, held_out = split_conversations(prompts, cfg.val_fraction, cfg.seed)
    stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
    model.generation_config.eos_token_id = stop_ids  # an answer ends at the end of its turn

    scorer = _reward_scorer(cfg, specs, device)
    table = SampleTable([s.name for s in specs], [s.weight for s in specs], shown=min(cfg.num_generations, SAMPLE_ROWS))
    funcs = [table.recorded(f) for f in reward_functions(specs, scorer, batch_size=cfg.batch_size * cfg.num_generations)]
    callback = ReporterCallback(
        reporter,
        summary={
            "method": cfg.method, "params": sum(p.numel() for p in model.parameters()),
            "base_model": info.architecture, "device": device.type, "precision": precision,
            "rewards": [s.name for s in specs], "num_generations": cfg.num_generations, "beta": cfg.beta,
            "train_prompts": len(train), "eval_prompts": len(held_out), "chat_template": chat,
        },
        eval_values=reward_eval_values,
        log_keys=log_keys(specs),
        tokens_offset=tokens_seen(resume_dir),
        on_cuda=device.type == "cuda",
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=trainer_config(cfg, device, precision, specs),
        train_dataset=as_dataset(train, chat),
        eval_dataset=as_dataset(held_out, chat),
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.method == "lora" else None,
        callbacks=[callback, RlCallback(reporter, table)],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line: the events carry them
    callback.summary["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return RlRun(cfg, trainer, tokenizer, callback, info, resume_dir)


def fit(run: RlRun) -> Path | None:
    if not train_to_the_end(run.trainer, run.callback, run.resume_dir):
        return None
    reporter, state = run.callback.reporter, run.trainer.state
    cfg = run.cfg
    artifact, saved = export_weights(run.trainer, run.tokenizer, cfg.output_dir, cfg.method, cfg.base_model, cfg.merge_lora)
    last, summary = run.callback.last, run.callback.summary
    metadata = {
        "method": cfg.method, "step": state.global_step,
        "base_model": {"path": cfg.base_model, "architecture": run.info.architecture, "params": run.info.parameters,
                       "context_length": run.info.context_length},
        "rewards": summary["rewards"], "beta": cfg.beta, "reward": last.get("reward"), "val_reward": last.get("val_reward"),
        "tokens_seen": last.get("tokens"), "trainable_params": summary["trainable_params"], "params": summary["params"],
    } | saved
    reporter.artifact("checkpoint", str(artifact), metadata)
    reporter.status("succeeded", step=state.global_step, summary=dict(run.callback.last))
    return artifact


def _check_references(specs: list[RewardSpec], prompts: list[Prompt]) -> None:
    for i, spec in enumerate(specs):
        if spec.kind == "exact_match" and not any(p.reference for p in prompts):
            raise ConfigError(f"rewards[{i}].kind", "exact_match needs reference answers, and no prompt read has one "
                                                    "(a multiple-choice eval dataset's answers are indices)")


def _reward_scorer(cfg: RlConfig, specs: list[RewardSpec], device: torch.device) -> Any:
    if not any(s.kind == REWARD_MODEL for s in specs):
        return None
    from training.reward import load_reward_scorer

    return load_reward_scorer(cfg.reward_model, device=device)


def fitting_prompts(prompts: list[Prompt], tokenizer: PreTrainedTokenizerBase, chat: bool, context: int,
                    max_completion_length: int, reporter: Reporter) -> list[Prompt]:
    """The prompts that leave `max_completion_length` positions for the answer (trl does not cut
    prompts); a warning says how many were left out, a ConfigError when none is left."""
    def length(p: Prompt) -> int:
        if chat:
            return len(tokenizer.apply_chat_template(p.messages, add_generation_prompt=True, return_dict=True)["input_ids"])
        return len(tokenizer(p.text)["input_ids"])

    kept = [p for p in prompts if length(p) + max_completion_length <= context]
    if not kept:
        raise ConfigError("max_completion_length", f"no prompt leaves room for {max_completion_length} answer tokens "
                                                   f"in the model's {context} positions: answer shorter, or use shorter prompts")
    if len(kept) < len(prompts):
        reporter.log(f"{len(prompts) - len(kept)} of {len(prompts)} prompts left out: with the answer's "
                     f"max_completion_length they are longer than the model's context", level="warning")
    return kept


def as_dataset(prompts: list[Prompt], chat: bool) -> Dataset:
    """trl's prompt rows: conversations for a model with a chat template (trl renders them with it),
    else the prompt as text; each with its reference answer where any prompt has one."""
    rows: list[dict[str, Any]] = [{"prompt": p.messages if chat else p.text} for p in prompts]
    if any(p.reference is not None for p in prompts):
        for row, p in zip(rows, prompts, strict=True):
            row["reference"] = p.reference
    return Dataset.from_list(rows)


def log_keys(specs: list[RewardSpec]) -> dict[str, str]:
    """trl's training-log keys → the lab's metric names."""
    keys = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
            "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio",
            "frac_reward_zero_std": "frac_reward_zero_std"}
    return keys | {f"rewards/{s.name}/mean": f"reward/{s.name}" for s in specs}


def reward_eval_values(metrics: dict[str, float]) -> dict[str, float]:
    """The held-out prompts' mean reward, from an evaluation's metrics."""
    values = {"val_reward": metrics.get("eval_reward")}
    return {k: v for k, v in values.items() if v is not None}


def trainer_config(cfg: RlConfig, device: torch.device, precision: str, specs: list[RewardSpec]) -> GRPOConfig:
    completions = cfg.batch_size * cfg.num_generations
    return GRPOConfig(
        **loop_arguments(cfg, device, precision),
        per_device_train_batch_size=completions,
        per_device_eval_batch_size=completions,
        gradient_accumulation_steps=cfg.grad_accum,
        activation_checkpointing=False,  # trl turns it on by default; tiny to mid models need no memory saved
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        beta=cfg.beta,
        reward_weights=[s.weight for s in specs],
        log_completions=False,  # the RlCallback streams the table
    )


class SampleTable:
    """The latest batch's answers and each reward's scores, recorded as trl calls the reward
    functions: every function is called with the same batch (the same list), one after another."""

    def __init__(self, names: list[str], weights: list[float], shown: int = SAMPLE_ROWS) -> None:
        self.weights = dict(zip(names, weights, strict=True))
        self.shown = shown
        self.completions_scored = 0
        self._batch: list[Any] | None = None
        self._prompts: list[Any] = []
        self._scores: dict[str, list[float | None]] = {}

    def recorded(self, func: Any) -> Any:
        def score(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
            values = func(prompts=prompts, completions=completions, **kwargs)
            if completions is not self._batch:
                self._batch, self._prompts, self._scores = completions, prompts, {}
                self.completions_scored += len(completions)
            self._scores[func.__name__] = values
            return values

        score.__name__ = func.__name__
        return score

    def rows(self) -> list[dict[str, Any]]:
        """The first `shown` answers of the batch (its first group: one prompt's answers, whose
        rewards compare): prompt, answer, and each reward with their weighted sum (`total`)."""
        if self._batch is None:
            return []
        rows = []
        n = self.shown
        for i, (prompt, completion) in enumerate(zip(self._prompts[:n], self._batch[:n], strict=True)):
            rewards = {name: scores[i] for name, scores in self._scores.items()}
            known = [self.weights[n] * v for n, v in rewards.items() if v is not None]
            rows.append({"prompt": _prompt_text(prompt), "text": completion_text(completion)[:SAMPLE_CHARS],
                         "rewards": {**rewards, "total": sum(known) if known else None}})
        return rows


def _prompt_text(prompt: str | list[dict[str, str]]) -> str:
    return prompt if isinstance(prompt, str) else Prompt(prompt).text


class RlCallback(TrainerCallback):
    """At each log: a `sample` event per answer of the latest batch's first group, with its
    rewards, and the completions generated per second since the last log."""

    def __init__(self, reporter: Reporter, table: SampleTable) -> None:
        self.reporter = reporter
        self.table = table
        self._since: tuple[float, int] | None = None

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self._since = (time.perf_counter(), self.table.completions_scored)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any):
        if not logs or "loss" not in logs or self._since is None:
            return  # an evaluation's log, or the end-of-training summary
        now, done = time.perf_counter(), self.table.completions_scored
        seconds, completions = now - self._since[0], done - self._since[1]
        self._since = (now, done)
        if completions:
            self.reporter.metric(state.global_step, {"completions_per_s": completions / max(seconds, 1e-9)})
        for row in self.table.rows():
            self.reporter.sample(state.global_step, row["prompt"], row["text"], rewards=row["rewards"])
