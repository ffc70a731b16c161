"""The reward stage's config (`python -m training reward`). No torch: the web validates a cell's form
with it before it queues a run; the checks that read files (the dataset's kind, the model's context
length, its linear layers) read only headers, config files and first records."""

from __future__ import annotations

from dataclasses import dataclass

from training.checkpoint_layout import resolve_checkpoint
from training.config import TrainingLoopConfig, own_fields_first
from training.config_checks import (
    ConfigError,
    check_limits,
    check_lora,
    require_at_least_one,
    require_choice,
)
from training.dataset_files import check_format, require_dataset_file, require_kind
from training.lora_targets import check_target_modules
from training.model_info import inspect_model_for_length
from training.sft_config import SCHEDULES, LoraFields

METHODS = ("full", "lora")


@own_fields_first
@dataclass(kw_only=True)
class RewardConfig(TrainingLoopConfig, LoraFields):
    """Train a reward model (one score per prompt and response) on preference pairs, with trl's
    RewardTrainer: the loss is -log σ(r_chosen - r_rejected - margin)."""

    base_model: str
    """A Hugging Face causal-LM folder (a lab checkpoint, usually an SFT one); its head is replaced by
    a one-output score head (`score`)."""
    dataset_path: str
    """Preference pairs: `prompt`/`chosen`/`rejected` (strings or messages) or hh-rlhf
    `chosen`/`rejected`; a pair's numeric `margin` (a campaign's export has one) is used."""
    output_dir: str
    """Run folder: Trainer checkpoints `checkpoint-N/`; with LoRA also `adapter/` and `merged/`."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats); it wins over the file's suffix."""
    method: str = "full"
    """`full`: every weight trains. `lora`: low-rank adapters plus the whole score head; the result
    is merged into a full model at the end."""
    max_length: int = 512
    """A prompt and its response are cut to this many tokens, from the left: the response's end,
    where the score is read, stays. At most the model's context length."""
    center_rewards: float = 0.0
    """Adds this × mean((r_chosen + r_rejected)²) to the loss, pulling rewards toward 0 (0.01 is
    usual; 0 turns it off). Centred rewards mix better with other rewards in RL."""
    schedule: str = "cosine"
    """After warmup: `cosine` down to `lr * min_lr_ratio`, `linear` down to 0, or `constant`."""
    max_steps: int = 200
    """Optimizer steps to train for; 0: train for `epochs` instead."""
    epochs: float = 1.0
    """Passes over the training pairs, when `max_steps` is 0."""
    val_fraction: float = 0.1
    lr: float = 5e-5
    weight_decay: float = 0.0
    batch_size: int = 8
    """Preference pairs per micro-batch (each pair is two sequences)."""
    warmup_steps: int = 10
    eval_every: int = 50
    checkpoint_every_steps: int = 100

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        for name in ("base_model", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        check_format("dataset_format", self.dataset_format)
        require_choice("method", self.method, METHODS)
        require_choice("schedule", self.schedule, SCHEDULES)
        require_at_least_one(self, "lora_r", "max_length")
        if self.max_steps == 0 and not self.epochs > 0:
            raise ConfigError("epochs", "must be greater than 0 when max_steps is 0")
        if not 0 <= self.center_rewards <= 1:
            raise ConfigError("center_rewards", "must be between 0 and 1 (0.01 is usual)")
        check_lora(self)
        self._check_training_loop()
        self._check_inputs()

    def _check_inputs(self) -> None:
        """The files exist and fit: a preference dataset, a model that serves `max_length` and has
        the target modules."""
        inspect_model_for_length(self.base_model, self.max_length)
        if self.method == "lora":
            check_target_modules(self.base_model, self.lora_target_modules)
        require_dataset_file("dataset_path", self.dataset_path)
        require_kind(self.dataset_path, self.dataset_format, "preference", "reward")
        if self.resume_from is not None:
            resolve_checkpoint(self.resume_from)
