"""The dpo stage: preference tuning of a causal LM with trl, from pairs or from unpaired labels.

Shape (as every stage's: training/stages.py): `setup` loads the policy (and, for full fine-tuning,
its frozen reference), reads and splits the preference data and builds the trainer that
`loss_type` names (training/dpo_config.py); `fit` trains it with a ReporterCallback (events, cancel)
and exports the result as sft does: full, the final checkpoint; LoRA, the base with the adapter
merged in (`merged/`), the adapter kept in `adapter/`.

The reference: with LoRA it is the base with the adapters disabled (trl does this when it gets no
reference model and a peft config), so no second copy is held; for full fine-tuning a frozen copy of
the base (or of `reference_model`), loaded through the lab's safe loader. ORPO and SimPO have none.
At step 0 the policy is its reference (dropout off, LoRA's B matrices zero), so DPO's sigmoid loss is
exactly ln 2 and every reward 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback, Trainer
from transformers.utils import logging as hf_logging
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer
from trl.experimental.cpo import CPOConfig, CPOTrainer
from trl.experimental.orpo import ORPOConfig, ORPOTrainer

from training import distributed
from training.base_model import load_base_model, load_base_tokenizer
from training.checkpoint_evals import CheckpointEvals
from training.checkpoint_layout import resolve_checkpoint
from training.config import ConfigError
from training.dpo_config import REFERENCE_FREE, DpoConfig, read_rows
from training.events import Reporter
from training.model_info import ModelInfo
from training.runtime import pick_device, resolve_precision
from training.sampling import stop_token_ids
from training.sft import (
    export_weights,
    generate_samples,
    load_model,
    loop_arguments,
    lora_config,
    sharding_arguments,
    split_conversations,
)
from training.stage_shape import setup_then_fit
from training.trainer_events import ReporterCallback, tokens_seen, train_to_the_end

SAMPLES_FROM_EVAL = 2
PREFERENCE_KEYS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "kl", "nll_loss",
                   "log_odds_ratio")
"""The trainers' own training-log values passed on as metric values under the same names: the
implicit rewards of chosen and rejected answers (beta × log-ratio to the reference; ORPO and SimPO
their own), their margin and how often chosen wins; KTO's KL estimate; ORPO's NLL and log odds."""


@dataclass
class DpoRun:
    """Everything `setup` made for training and export."""

    cfg: DpoConfig
    trainer: Trainer
    tokenizer: PreTrainedTokenizerBase
    callback: ReporterCallback
    info: ModelInfo
    resume_dir: Path | None


def run_dpo(cfg: DpoConfig, reporter: Reporter) -> Path | None:
    """Preference-tune; return the artifact's folder, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def fit(run: DpoRun) -> Path | None:
    if not train_to_the_end(run.trainer, run.callback, run.resume_dir):
        return None
    reporter, state = run.callback.reporter, run.trainer.state
    cfg = run.cfg
    folder, saved = export_weights(run.trainer, run.tokenizer, cfg.output_dir, cfg.method, cfg.base_model, merge_lora=True)
    metadata = {
        "task": "preference", "method": cfg.method, "loss_type": cfg.loss_type, "beta": cfg.beta,
        "step": state.global_step,
        "base_model": {"path": cfg.base_model, "architecture": run.info.architecture, "params": run.info.parameters,
                       "context_length": run.info.context_length},
        "reference": run.callback.summary["reference"],
        "trainable_params": run.callback.summary["trainable_params"], "params": run.callback.summary["params"],
        "metrics": {k: v for k, v in run.callback.last.items() if k.startswith(("val_", "rewards/"))},
    } | saved
    reporter.artifact("checkpoint", str(folder), metadata)
    reporter.status("succeeded", step=state.global_step, summary=dict(run.callback.last))
    return folder


def setup(cfg: DpoConfig, reporter: Reporter) -> DpoRun:
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()  # trl's tokenizing maps would fill stderr with bars
    distributed.check_batch(cfg.batch_size)
    cfg.check_devices(distributed.world_size())
    device = distributed.start(pick_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None

    tokenizer = load_base_tokenizer(cfg.base_model)
    shape, rows = read_rows(cfg.dataset_path, cfg.dataset_format)
    conversational = isinstance(rows[0]["prompt"], list)
    if conversational and not tokenizer.chat_template:
        raise ConfigError("base_model", f"the model in {Path(cfg.base_model).name} has no chat template, and the "
                                        "dataset's prompts are conversations: fine-tune it with one (sft) first")
    train, held_out = split_conversations(rows, cfg.val_fraction, cfg.seed)
    prompts = sample_prompts(cfg, held_out, conversational)

    model, info = load_model(cfg, precision)
    stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id, chat=conversational)
    model.generation_config.eos_token_id = stop_ids  # checkpoints then end their turn by themselves
    n_params = sum(p.numel() for p in model.parameters())
    reference = _reference_name(cfg)
    callback = ReporterCallback(
        reporter,
        summary={
            "method": cfg.method, "loss_type": cfg.loss_type, "beta": cfg.beta, "reference": reference,
            "params": n_params, "base_model": info.architecture, "device": device.type, "precision": precision,
            "max_length": cfg.max_length, "data": shape, "train_rows": len(train), "eval_rows": len(held_out),
        },
        sampler=lambda m: generate_samples(m, tokenizer, prompts, cfg.sample_tokens, stop_ids, cfg.max_length),
        tokens_offset=tokens_seen(resume_dir),
        on_cuda=device.type == "cuda",
        eval_values=preference_eval,
        log_keys={k: k for k in PREFERENCE_KEYS},
        checkpoint_evals=CheckpointEvals(cfg.eval_tasks, reporter),
    )
    loop = loop_arguments(cfg, device, precision) | sharding_arguments(cfg, device)
    trainer = make_trainer(cfg, model, tokenizer, train, held_out, loop, callback)
    trainer.remove_callback(PrinterCallback)  # it prints every log line: the events carry them
    callback.summary["trainable_params"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return DpoRun(cfg, trainer, tokenizer, callback, info, resume_dir)


def make_trainer(cfg: DpoConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train: list[dict],
                 held_out: list[dict], loop: dict[str, Any], callback: ReporterCallback) -> Trainer:
    """The trl trainer of `cfg.loss_type`, on the lab's training-loop arguments. `batch_size` is the
    global batch: under torchrun each rank takes its share."""
    batch = distributed.rank_batch(cfg.batch_size)
    loop = loop | {
        "per_device_train_batch_size": batch, "per_device_eval_batch_size": batch,
        "gradient_accumulation_steps": cfg.grad_accum, "activation_checkpointing": False,
        "max_length": cfg.max_length, "beta": cfg.beta,
    }
    common = {"model": model, "processing_class": tokenizer, "callbacks": [callback],
              "train_dataset": Dataset.from_list(train), "eval_dataset": Dataset.from_list(held_out),
              "peft_config": lora_config(cfg) if cfg.uses_lora else None}
    if cfg.loss_type == "orpo":  # trl's older preference collator reads the text columns: keep them
        return ORPOTrainer(args=ORPOConfig(**loop, remove_unused_columns=False), **common)
    if cfg.loss_type == "simpo":
        # SimPO is CPO's simpo loss without CPO's behaviour-cloning term (cpo_alpha 0; trl's default 1 is CPO-SimPO).
        args = CPOConfig(**loop, remove_unused_columns=False, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=cfg.simpo_gamma)
        return CPOTrainer(args=args, **common)
    reference = reference_model(cfg, model)
    if cfg.loss_type == "kto":
        return KTOTrainer(ref_model=reference, args=KTOConfig(**loop), **common)
    args = DPOConfig(**loop, loss_type=[cfg.loss_type], label_smoothing=cfg.label_smoothing)
    return DPOTrainer(ref_model=reference, args=args, **common)


def reference_model(cfg: DpoConfig, policy: PreTrainedModel) -> PreTrainedModel | None:
    """The frozen reference for full fine-tuning, loaded through the lab's safe loader in the
    policy's dtype; None with LoRA, where trl disables the adapters instead."""
    if cfg.uses_lora:
        return None
    reference, _ = load_base_model(cfg.reference_model or cfg.base_model, field="reference_model", dtype=policy.dtype)
    reference.requires_grad_(False)
    return reference.eval()


def _reference_name(cfg: DpoConfig) -> str:
    if cfg.loss_type in REFERENCE_FREE:
        return "none"
    if cfg.uses_lora:
        return "base with adapters disabled"
    return cfg.reference_model or "copy of the base"


def sample_prompts(cfg: DpoConfig, held_out: list[dict], conversational: bool) -> list[Any]:
    """The prompts answered at each eval, in the data's own form: message lists or text."""
    if cfg.sample_prompts:
        return [[{"role": "user", "content": p}] if conversational else p for p in cfg.sample_prompts]
    return [row["prompt"] for row in held_out[:SAMPLES_FROM_EVAL]]


def preference_eval(metrics: dict[str, float]) -> dict[str, float]:
    """The lab's values of an evaluation: the held-out loss and the held-out rewards (a perplexity
    of a preference loss means nothing)."""
    values = {"val_loss": metrics["eval_loss"]}
    values |= {f"val_{key}": metrics[f"eval_{key}"] for key in PREFERENCE_KEYS if f"eval_{key}" in metrics}
    return values

