"""The classify stage's config (`python -m training classify`). No torch: the web validates a cell's
form with it before it queues a run, and the checks that read files (the dataset's kind, the base
model's context length) only read headers and first records."""

from __future__ import annotations

from dataclasses import dataclass

from training.config import _Config
from training.config_checks import (
    DEVICES,
    ConfigError,
    check_limits,
    check_lora,
    check_optimizer,
    check_warmup,
    require_at_least_one,
    require_choice,
    require_folder_or_null,
    require_not_negative,
    resolve_resume,
)
from training.dataset_files import check_format, require_dataset_file, require_kind
from training.model_info import inspect_model_for_length

METHODS = ("full", "lora")


@dataclass
class ClassifyConfig(_Config):
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
    batch_size: int = 16
    """Examples per micro-batch."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step."""
    max_steps: int = 500
    """Optimizer steps to train for."""
    lr: float = 5e-5
    """Peak learning rate, reached after warmup."""
    min_lr_ratio: float = 0.1
    """The cosine decay ends at `lr * min_lr_ratio`."""
    warmup_steps: int = 20
    """Steps of linear warmup from 0 to `lr`; fewer than `max_steps`."""
    weight_decay: float = 0.01
    """AdamW weight decay (not on biases and norms)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.999
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 turns clipping off."""
    precision: str = "fp32"
    """`fp32`, or `bf16` mixed precision (a GPU only)."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`."""
    seed: int = 1337
    """Seeds the classification head, the validation split and the batch order."""
    log_every: int = 10
    """Emit a `metric` event (mean loss over the interval) every this many steps."""
    eval_every: int = 100
    """Evaluate on the validation split every this many steps and at the end; 0 = end only."""
    checkpoint_every_steps: int = 200
    """Save a checkpoint every this many steps (and always at the end); 0 = at the end only."""
    resume_from: str | None = None
    """A `checkpoint-N` folder of an earlier run of this config, or its run folder (highest N)."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        for name in ("base_model", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        check_format("dataset_format", self.dataset_format)
        require_choice("method", self.method, METHODS)
        require_at_least_one(self, "lora_r", "max_length", "batch_size", "grad_accum", "max_steps", "log_every")
        require_not_negative(self, "eval_every", "checkpoint_every_steps", "seed")
        check_lora(self)
        if not 0 < self.val_fraction < 0.5:
            raise ConfigError("val_fraction", "must be above 0 and below 0.5")
        check_optimizer(self)
        check_warmup(self.warmup_steps, self.max_steps)
        require_choice("precision", self.precision, ("fp32", "bf16"))
        require_choice("device", self.device, DEVICES)
        if self.device == "cpu" and self.precision == "bf16":
            raise ConfigError("precision", "bf16 needs a GPU; on cpu use fp32")
        require_folder_or_null(self, "resume_from")
        self._check_inputs()

    def _check_inputs(self) -> None:
        """The files exist and fit: a classification dataset, a model that serves `max_length`."""
        inspect_model_for_length(self.base_model, self.max_length)
        require_dataset_file("dataset_path", self.dataset_path)
        require_kind(self.dataset_path, self.dataset_format, "classification", "classify")
        if self.resume_from is not None:
            resolve_resume(self.resume_from)
