"""The classify stage's config (`python -m training classify`). No torch: the web validates a cell's
form with it before it queues a run, and the checks that read files (the dataset's kind, the base
model's context length) only read headers and first records."""

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
from training.model_info import inspect_model_for_length

METHODS = ("full", "lora")


@own_fields_first
@dataclass(kw_only=True)
class ClassifyConfig(TrainingLoopConfig):
    """Fine-tune a base model into a sequence classifier on a classification dataset."""

    base_model: str
    """A Hugging Face causal-LM folder (a lab checkpoint or an uploaded model); its head is replaced
    by a classification head (`score`) with one output per label."""
    dataset_path: str
    """A classification dataset: records with `text` and `label`."""
    output_dir: str
    """Run folder: Trainer checkpoints `checkpoint-N/` (and `merged/` for LoRA) are written here."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats); it wins over the file's suffix."""
    method: str = "full"
    """`full`: every weight trains. `lora`: low-rank adapters on every linear layer plus the whole
    classification head; the result is merged into a full model at the end."""
    lora_r: int = 8
    """LoRA rank (method `lora`)."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator: adapters are scaled by `lora_alpha / lora_r`."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA adapters' input, in [0, 1)."""
    max_length: int = 256
    """Texts are cut to this many tokens; at most the base model's context length."""
    val_fraction: float = 0.1
    """Share of each label's examples held out for validation (seeded, stratified by label)."""
    max_steps: int = 500
    lr: float = 5e-5
    weight_decay: float = 0.01
    eval_every: int = 100
    checkpoint_every_steps: int = 200

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        for name in ("base_model", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        check_format("dataset_format", self.dataset_format)
        require_choice("method", self.method, METHODS)
        require_at_least_one(self, "lora_r", "max_length", "max_steps")
        check_lora(self)
        self._check_training_loop()
        self._check_inputs()

    def _check_inputs(self) -> None:
        """The files exist and fit: a classification dataset, a model that serves `max_length`."""
        inspect_model_for_length(self.base_model, self.max_length)
        require_dataset_file("dataset_path", self.dataset_path)
        require_kind(self.dataset_path, self.dataset_format, "classification", "classify")
        if self.resume_from is not None:
            resolve_checkpoint(self.resume_from)
