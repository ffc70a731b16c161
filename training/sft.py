"""The sft stage: supervised fine-tuning of a causal LM on conversations, with trl's SFTTrainer.

Shape (as every stage's: training/stages.py): `setup` loads the base model and tokenizer, reads and
splits the dataset and builds the trainer; `fit` trains it with a ReporterCallback (events, cancel)
and exports the result. With
LoRA the artifact is the base with the adapter merged in (`merged/`), the adapter kept in `adapter/`.

Which tokens carry loss (`loss_on: assistant`) comes from the chat template's `{% generation %}`
marks (trl's `assistant_only_loss`): a template that has them, the lab's ChatML (whose marked twin
is in training/chat_templates.py) or a template trl knows a marked version of. For any other
template, each conversation is split into a prompt and its last assistant message (trl's
prompt-completion with `completion_only_loss`), so the loss is on that final answer.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback, Trainer
from transformers.utils import logging as hf_logging
from trl import SFTConfig, SFTTrainer
from trl.chat_template_utils import get_training_chat_template

from training import distributed
from training.base_model import load_base_model, load_base_tokenizer
from training.chat_templates import marked_template
from training.checkpoint_evals import CheckpointEvals
from training.checkpoint_layout import resolve_checkpoint
from training.config import ConfigError
from training.dataset_files import read_records
from training.events import Reporter
from training.model_info import ModelInfo
from training.runtime import pick_device, resolve_precision, weights_dtype
from training.sampling import stop_token_ids
from training.sft_config import FSDP_NEEDS_CUDA, LoraFields, SftConfig, ShardingField
from training.stage_shape import setup_then_fit
from training.trainer_events import ReporterCallback, checkpoint_folder, tokens_seen, train_to_the_end

Messages = list[dict[str, str]]
SAMPLES_FROM_EVAL = 2


@dataclass
class SftRun:
    """Everything `setup` made for training and export."""

    cfg: SftConfig
    trainer: SFTTrainer
    tokenizer: PreTrainedTokenizerBase
    callback: ReporterCallback
    info: ModelInfo
    loss_mode: str
    """`assistant` (marked template), `completion` (last answer) or `all`."""
    resume_dir: Path | None


def run_sft(cfg: SftConfig, reporter: Reporter) -> Path | None:
    """Fine-tune; return the artifact's folder, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def fit(run: SftRun) -> Path | None:
    if not train_to_the_end(run.trainer, run.callback, run.resume_dir):
        return None
    reporter, state = run.callback.reporter, run.trainer.state
    artifact, metadata = export(run)
    reporter.artifact("checkpoint", str(artifact), metadata)
    reporter.status("succeeded", step=state.global_step, summary=dict(run.callback.last))
    return artifact


def setup(cfg: SftConfig, reporter: Reporter) -> SftRun:
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()  # trl's tokenizing maps would fill stderr with bars
    distributed.check_batch(cfg.batch_size)
    device = distributed.start(pick_device(cfg.device))
    precision = resolve_precision(cfg.precision, device)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None

    tokenizer = load_base_tokenizer(cfg.base_model)
    if cfg.chat_template:
        tokenizer.chat_template = cfg.chat_template
    loss_mode = choose_loss_mode(cfg, tokenizer)
    conversations = [r["messages"] for r in read_records(cfg.dataset_path, cfg.dataset_format, "sft")]
    train, held_out = split_conversations(conversations, cfg.val_fraction, cfg.seed)
    if loss_mode == "completion" and any(_assistant_turns(c) > 1 for c in train):
        reporter.log(
            "the chat template does not mark the assistant's tokens ({% generation %}), so only the last "
            "assistant message of each conversation carries loss; earlier turns are context",
            level="warning",
        )
    prompts = sample_conversations(cfg, held_out)

    model, info = load_model(cfg, precision)
    stop_ids = stop_token_ids(tokenizer, model.generation_config.eos_token_id)
    model.generation_config.eos_token_id = stop_ids  # checkpoints then end their turn by themselves
    n_params = sum(p.numel() for p in model.parameters())
    trainer_args = trainer_config(cfg, device, precision, loss_mode)
    callback = ReporterCallback(
        reporter,
        summary={
            "method": cfg.method, "params": n_params, "base_model": info.architecture,
            "device": device.type, "precision": precision, "loss_on": loss_mode, "packing": cfg.packing,
            "max_length": cfg.max_length, "train_conversations": len(train),
            "eval_conversations": len(held_out),
        },
        sampler=lambda m: generate_samples(m, tokenizer, prompts, cfg.sample_tokens, stop_ids, cfg.max_length),
        checkpoint_every_minutes=cfg.checkpoint_every_minutes,
        tokens_offset=tokens_seen(resume_dir),
        on_cuda=device.type == "cuda",
        checkpoint_evals=CheckpointEvals(cfg.eval_tasks, reporter),
    )
    trainer = SFTTrainer(
        model=model,
        args=trainer_args,
        train_dataset=as_dataset(train, loss_mode),
        eval_dataset=as_dataset(held_out, loss_mode),
        processing_class=tokenizer,
        peft_config=lora_config(cfg) if cfg.uses_lora else None,
        callbacks=[callback],
    )
    trainer.remove_callback(PrinterCallback)  # it prints every log line: the events carry them
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    callback.summary["trainable_params"] = trainable
    return SftRun(cfg, trainer, tokenizer, callback, info, loss_mode, resume_dir)


def choose_loss_mode(cfg: SftConfig, tokenizer: PreTrainedTokenizerBase) -> str:
    """How loss is masked (see the module's docstring); sets the marked template on the tokenizer.

    The marks do not change the rendered text, so the saved tokenizer serves inference the same.
    """
    if cfg.loss_on == "all":
        return "all"
    marked = marked_template(tokenizer.chat_template)
    if marked is None:
        try:
            marked = get_training_chat_template(tokenizer)
        except ValueError:  # trl knows no marked version of this template
            return "completion"
    tokenizer.chat_template = marked
    return "assistant"


def split_conversations(conversations: list[Messages], val_fraction: float, seed: int
                        ) -> tuple[list[Messages], list[Messages]]:
    """(train, held out): a seeded shuffle, at least one conversation on each side."""
    n = len(conversations)
    n_eval = max(1, round(n * val_fraction))
    if n - n_eval < 1:
        raise ConfigError("dataset", f"holds {n} conversation(s): too few to hold some out for eval")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held_out = sorted(order[:n_eval])
    train = sorted(order[n_eval:])
    return [conversations[i] for i in train], [conversations[i] for i in held_out]


def as_dataset(conversations: list[Messages], loss_mode: str) -> Dataset:
    if loss_mode == "completion":
        rows = [{"prompt": c[:_last_assistant(c)], "completion": c[_last_assistant(c):]} for c in conversations]
        return Dataset.from_list(rows)
    return Dataset.from_list([{"messages": c} for c in conversations])


def sample_conversations(cfg: SftConfig, held_out: list[Messages]) -> list[Messages]:
    """The conversations whose next assistant answer is sampled at each eval."""
    if cfg.sample_prompts:
        return [[{"role": "user", "content": p}] for p in cfg.sample_prompts]
    return [c[:_last_assistant(c)] for c in held_out[:SAMPLES_FROM_EVAL]]


def load_model(cfg: SftConfig, precision: str) -> tuple[PreTrainedModel, ModelInfo]:
    """The base in fp32 (full: the master weights; mixed precision autocasts on top). A LoRA base
    is frozen, so under mixed precision it is held in that precision, halving its memory."""
    if cfg.method == "qlora":
        return _load_4bit(cfg)
    return load_base_model(cfg.base_model, dtype=weights_dtype(precision) if cfg.method == "lora" else torch.float32)


def _load_4bit(cfg: SftConfig) -> tuple[PreTrainedModel, ModelInfo]:
    if not torch.cuda.is_available():
        raise ConfigError("method", "qlora (a 4-bit base) needs a GPU, and this run has none: use lora")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("method", "qlora needs the bitsandbytes package, which this worker lacks") from None
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model, info = load_base_model(
        cfg.base_model, dtype=torch.bfloat16, quantization_config=quantization,
        device_map={"": torch.cuda.current_device()},  # this rank's GPU (distributed.start chose it)
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model, info


def lora_config(cfg: LoraFields, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None) -> LoraConfig:
    """peft's config of a stage's LoRA fields; `modules_to_save` train whole and are saved with the
    adapter (a new head: the reward stage's `score`)."""
    targets: str | list[str] = cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", task_type=task_type, modules_to_save=modules_to_save,
    )


def loop_arguments(cfg: Any, device: torch.device, precision: str) -> dict[str, Any]:
    """The Trainer arguments of a stage's training-loop fields (`TrainingLoopConfig` and `schedule`,
    `epochs`), for the trl configs of sft and dpo; the batch sizes are each stage's own."""
    schedules = {
        "cosine": ("cosine_with_min_lr", {"min_lr_rate": cfg.min_lr_ratio}),
        "linear": ("linear", {}),
        "constant": ("constant_with_warmup", {}),
    }
    scheduler, scheduler_kwargs = schedules[cfg.schedule]
    return {
        "output_dir": cfg.output_dir,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "max_steps": cfg.max_steps or -1,
        "num_train_epochs": cfg.epochs,
        "learning_rate": cfg.lr,
        "lr_scheduler_type": scheduler,
        "lr_scheduler_kwargs": scheduler_kwargs,
        "warmup_steps": cfg.warmup_steps,
        "weight_decay": cfg.weight_decay,
        "adam_beta1": cfg.beta1,
        "adam_beta2": cfg.beta2,
        "max_grad_norm": cfg.grad_clip,
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": device.type == "cpu",
        "logging_strategy": "steps",
        "logging_steps": cfg.log_every,
        "eval_strategy": "steps" if cfg.eval_every else "no",  # the callback adds the end's eval
        "eval_steps": cfg.eval_every or None,
        "save_strategy": "steps" if cfg.checkpoint_every_steps else "no",  # the end always saves
        "save_steps": cfg.checkpoint_every_steps or 500,
        "report_to": "none",
        "disable_tqdm": True,
        "ddp_find_unused_parameters": False,  # every trainable weight takes part: skip DDP's search for idle ones
    }


def sharding_arguments(cfg: ShardingField, device: torch.device) -> dict[str, Any]:
    """The Trainer arguments of `sharding`: FSDP (transformers' default, FSDP2 with each decoder
    layer a unit) when the run has several devices and asks for it; else DDP, or one device."""
    if cfg.sharding == "fsdp" and device.type != "cuda":  # `device: auto` found no GPU
        raise ConfigError("sharding", FSDP_NEEDS_CUDA)
    return {"fsdp": cfg.sharding == "fsdp" and distributed.world_size() > 1}


def trainer_config(cfg: SftConfig, device: torch.device, precision: str, loss_mode: str) -> SFTConfig:
    # Packed rows go through the model one at a time, their gradients accumulated into the same
    # optimizer step: trl's padding-free collator joins a batch's rows into one sequence, and
    # without a varlen kernel (flash attention) its block-diagonal attention then costs
    # (rows * max_length)^2 instead of rows * max_length^2 (measured: half the speed at 4 x 512).
    # `batch_size` is the global batch: under torchrun each rank takes its share.
    batch = distributed.rank_batch(cfg.batch_size)
    rows_per_pass, passes = (1, batch * cfg.grad_accum) if cfg.packing else (batch, cfg.grad_accum)
    return SFTConfig(
        **loop_arguments(cfg, device, precision),
        **sharding_arguments(cfg, device),
        per_device_train_batch_size=rows_per_pass,
        per_device_eval_batch_size=batch,
        gradient_accumulation_steps=passes,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        eval_packing=False,  # the same eval batches packed or not, so eval losses compare
        assistant_only_loss=loss_mode == "assistant",
        completion_only_loss=loss_mode == "completion",
    )


@torch.no_grad()
def generate_samples(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, conversations: list[Messages | str],
    max_new_tokens: int, stop_ids: list[int], max_length: int,
) -> list[tuple[str, str]]:
    """Greedy answers to the conversations (or to text prompts, continued as they are: dpo's data
    may be text): deterministic, and no draw from the RNG a resume restores."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    answers = []
    for messages in conversations:
        if isinstance(messages, str):
            text = messages
        else:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = ids[-max(max_length - max_new_tokens, 1):]  # a long prompt keeps its end
        input_ids = torch.tensor([ids], device=device)
        output = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
            do_sample=False, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id,
        )
        answer = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
        answers.append((messages if isinstance(messages, str) else messages[-1]["content"], answer))
    model.train(was_training)
    return answers


def export(run: SftRun) -> tuple[Path, dict[str, Any]]:
    """The artifact folder and its metadata. Full: the final checkpoint. LoRA: `adapter/`, and
    `merged/` (base + adapter as one model) unless `merge_lora` is off."""
    cfg, trainer = run.cfg, run.trainer
    metadata: dict[str, Any] = {
        "method": cfg.method,
        "step": trainer.state.global_step,
        "base_model": {
            "path": cfg.base_model, "architecture": run.info.architecture, "params": run.info.parameters,
            "context_length": run.info.context_length,
        },
        "val_loss": run.callback.last.get("val_loss"),
        "tokens_seen": run.callback.last.get("tokens"),
        "trainable_params": run.callback.summary["trainable_params"],
        "params": run.callback.summary["params"],
        "loss_on": run.loss_mode,
    }
    folder, saved = export_weights(trainer, run.tokenizer, cfg.output_dir, cfg.method, cfg.base_model, cfg.merge_lora)
    return folder, metadata | saved


def export_weights(trainer: Trainer, tokenizer: PreTrainedTokenizerBase, output_dir: str, method: str, base_model: str,
                   merge_lora: bool) -> tuple[Path, dict[str, Any]]:
    """The trained model's folder, for every stage that fine-tunes with a Trainer (full, lora or
    qlora), and what it is (`merged`, `adapter_path`). Full: the final checkpoint. LoRA: `adapter/`,
    and `merged/` (base + adapter as one model) unless `merge_lora` is off."""
    if method == "full":
        return checkpoint_folder(output_dir, trainer.state.global_step).resolve(), {"merged": False}
    out = Path(output_dir)
    adapter = _write_atomically(out / "adapter", lambda tmp: _save(trainer.model, tokenizer, tmp))
    if not merge_lora:
        return adapter, {"merged": False, "adapter_path": str(adapter)}
    merged = _write_atomically(out / "merged", lambda tmp: _save(merge(trainer.model, method, base_model, adapter), tokenizer, tmp))
    return merged, {"merged": True, "adapter_path": str(adapter)}


def merge(model: PeftModel, method: str, base_model: str, adapter: Path) -> PreTrainedModel:
    """Base + adapter as one plain model. A 4-bit base is reloaded in bf16 first: merging into
    quantized weights would round the adapter away."""
    if method == "qlora":
        base, _ = load_base_model(base_model, dtype=torch.bfloat16)
        return PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return model.merge_and_unload()


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _write_atomically(final: Path, write: Any) -> Path:
    """Write a folder under a temporary name and rename it: a folder that exists is whole. Under
    torchrun rank 0 writes it while the other ranks wait."""
    if distributed.is_main():
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    distributed.barrier()
    return final.resolve()


def _last_assistant(messages: Messages) -> int:
    return max(i for i, m in enumerate(messages) if m["role"] == "assistant")


def _assistant_turns(messages: Messages) -> int:
    return sum(m["role"] == "assistant" for m in messages)
