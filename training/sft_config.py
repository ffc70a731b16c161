"""The sft stage's config (`python -m training sft`). No torch: the web validates a cell's form with
it before it queues a run. The checks that read files (the dataset's kind, the model's context
length, its linear layers, its chat template) read only headers, config files and first records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from training.checkpoint_evals import EvaluatedCheckpoints
from training.checkpoint_layout import resolve_checkpoint
from training.config import TimedCheckpoints, TrainingLoopConfig, _check_chat_template, own_fields_first
from training.config_checks import (
    ConfigError,
    check_limits,
    check_lora,
    require_at_least_one,
    require_choice,
    require_not_negative,
)
from training.dataset_files import check_format, require_dataset_file, require_kind
from training.lora_targets import ALL_LINEAR, check_target_modules
from training.model_info import inspect_model_for_length
from training.tokenizer_files import declared_special_tokens, read_tokenizer_config

METHODS = ("full", "lora", "qlora")
LOSS_ON = ("assistant", "all")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SHARDINGS = ("ddp", "fsdp")
FSDP_NEEDS_CUDA = ("fsdp needs GPUs: transformers' Trainer (through accelerate) shards a model only over CUDA "
                   "devices and would quietly fall back to ddp on CPUs; use ddp")


@dataclass(kw_only=True)
class LoraFields:
    """The LoRA adapter's fields, for every stage that fine-tunes a model with a `lora` method (sft,
    reward, …): declared and documented once. The stage checks them with `check_lora` and, where
    adapters are asked for, `check_target_modules`."""

    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator: adapters are scaled by `lora_alpha / lora_r`."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA adapters' input, in [0, 1)."""
    lora_target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR])
    """Linear layers that get adapters, by name (`q_proj`, `v_proj`), or `all-linear`."""


@dataclass(kw_only=True)
class ShardingField:
    """How a Trainer stage spreads its model over several devices (a run that asks for more than one,
    launched under torchrun); declared once for every stage that can."""

    sharding: str = "ddp"
    """On several devices: `ddp`, each device holds the whole model and the gradients are averaged;
    `fsdp` (GPUs only, full fine-tuning), the weights, gradients and optimizer state are split over
    the devices, for a model too large for one. On one device it changes nothing."""

    def _check_sharding(self) -> None:
        require_choice("sharding", self.sharding, SHARDINGS)
        if self.sharding != "fsdp":
            return
        if self.device == "cpu":
            raise ConfigError("sharding", FSDP_NEEDS_CUDA)
        if self.method != "full":  # type: ignore[attr-defined]
            raise ConfigError("sharding", "fsdp shards a full fine-tune; LoRA's adapters are small: use ddp")


@own_fields_first
@dataclass(kw_only=True)
class SftConfig(EvaluatedCheckpoints, TimedCheckpoints, TrainingLoopConfig, LoraFields, ShardingField):
    """Supervised fine-tuning of a causal LM on conversations, with trl's SFTTrainer."""

    PRECISIONS: ClassVar[tuple[str, ...]] = PRECISIONS

    base_model: str
    """A Hugging Face causal-LM folder: a lab checkpoint or an uploaded model."""
    dataset_path: str
    """An SFT dataset: `messages`, `prompt`/`completion` or alpaca `instruction`/`input`/`output`."""
    output_dir: str
    """Run folder: Trainer checkpoints `checkpoint-N/`; with LoRA also `adapter/` and `merged/`."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats); it wins over the file's suffix."""
    method: str = "full"
    """`full`: every weight trains. `lora`: low-rank adapters, the base frozen. `qlora`: LoRA on
    a 4-bit base (a GPU and bitsandbytes only)."""
    merge_lora: bool = True
    """LoRA: the artifact is the base with the adapters merged in (`merged/`), the adapter kept in
    `adapter/` beside it; false: the artifact is the adapter alone."""
    chat_template: str = ""
    """Jinja chat template the conversations are rendered with; empty: the model's own."""
    loss_on: str = "assistant"
    """`assistant`: only the assistant's tokens carry loss; `all`: every token does."""
    packing: bool = False
    """Pack conversations into rows of `max_length` tokens with no padding (trl's best-fit packing,
    padding-free: each conversation attends only to itself)."""
    max_length: int = 1024
    """Conversations are cut to this many tokens; at most the model's context length."""
    sample_prompts: list[str] = field(default_factory=list)
    """User messages answered at every eval; empty: the first two held-out conversations."""
    sample_tokens: int = 64
    """Tokens generated per sample answer (greedy)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third slower."""
    lr: float = 2e-5
    schedule: str = "cosine"
    """After warmup: `cosine` down to `lr * min_lr_ratio`, `linear` down to 0, or `constant`."""
    warmup_steps: int = 10
    batch_size: int = 8
    """Conversations per micro-batch; with `packing`, rows of `max_length` tokens per optimizer step
    (each row a pass of its own, gradients accumulated)."""
    max_steps: int = 200
    """Optimizer steps to train for; 0: train for `epochs` instead."""
    epochs: float = 1.0
    """Passes over the training split, when `max_steps` is 0."""
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        for name in ("base_model", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        check_format("dataset_format", self.dataset_format)
        require_choice("method", self.method, METHODS)
        require_choice("loss_on", self.loss_on, LOSS_ON)
        require_choice("schedule", self.schedule, SCHEDULES)
        require_at_least_one(self, "lora_r", "max_length", "sample_tokens")
        require_not_negative(self, "checkpoint_every_minutes")
        if self.max_steps == 0 and not self.epochs > 0:
            raise ConfigError("epochs", "must be greater than 0 when max_steps is 0")
        check_lora(self)
        self._check_sharding()
        if any(not p.strip() for p in self.sample_prompts):
            raise ConfigError("sample_prompts", "must not contain an empty prompt")
        self._check_training_loop()
        if self.device == "cpu" and self.method == "qlora":
            raise ConfigError("method", "qlora (a 4-bit base) needs a GPU; on cpu use lora")
        self._check_inputs()

    def _check_inputs(self) -> None:
        """The files exist and fit: an sft dataset, a model that serves `max_length`, has the
        target modules and a chat template."""
        info = inspect_model_for_length(self.base_model, self.max_length)
        if self.chat_template:
            _check_chat_template(self.chat_template, _special_tokens(Path(self.base_model)))
        elif not info.chat_template:
            raise ConfigError(
                "chat_template",
                f"the model in {Path(self.base_model).name} has no chat template: give one "
                "(ChatML, for instance, if its tokenizer has <|im_start|> and <|im_end|>)",
            )
        if self.method != "full":
            check_target_modules(self.base_model, self.lora_target_modules)
        require_dataset_file("dataset_path", self.dataset_path)
        require_kind(self.dataset_path, self.dataset_format, "sft", "sft")
        if self.resume_from is not None:
            resolve_checkpoint(self.resume_from)

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora")


def _special_tokens(folder: Path) -> dict[str, str]:
    """The `bos_token`, `eos_token`, … a chat template may use, from `tokenizer_config.json`."""
    return declared_special_tokens(read_tokenizer_config(folder, "base_model"))
