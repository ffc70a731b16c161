"""The dpo stage's config (`python -m training dpo`): preference tuning of a causal LM with trl's
DPOTrainer and its kin. No torch: the web validates a cell's form with it before it queues a run; the
checks that read files (the dataset's kind and pairing, the model's context length, its linear
layers, a reference model's vocabulary) read only headers, config files and records.

`loss_type` picks the trainer: one of trl's DPO losses (`DPO_LOSS_TYPES`, DPOTrainer), a
reference-free variant (`orpo`: ORPOTrainer; `simpo`: CPOTrainer with `loss_type="simpo"` and no
behaviour-cloning term), or `kto` (KTOTrainer), which learns from unpaired labels: a file of
`{"prompt", "completion", "label": true|false}` rows (the "both bad" export of a feedback campaign
is one), or preference pairs, each split into a desirable and an undesirable row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from training.checkpoint_evals import EvaluatedCheckpoints
from training.checkpoint_layout import resolve_checkpoint
from training.config import TrainingLoopConfig, own_fields_first
from training.config_checks import (
    ConfigError,
    check_limits,
    check_lora,
    require_at_least_one,
    require_choice,
)
from training.dataset_files import check_format, file_kind, reader_name, require_dataset_file
from training.datasets import DatasetError
from training.datasets.errors import json_type
from training.datasets.records import Scan
from training.lora_targets import check_target_modules
from training.model_info import inspect_model, inspect_model_for_length
from training.sft_config import LoraFields, ShardingField

METHODS = ("full", "lora")
DPO_LOSS_TYPES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
    "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
"""trl 1.16's DPOTrainer losses (`DPOConfig.loss_type`); a test holds this list to trl's own."""
REFERENCE_FREE = ("orpo", "simpo")
"""Losses with no reference model: ORPO (odds ratio + NLL) and SimPO (length-normalised margin)."""
UNPAIRED = ("kto",)
"""Losses that learn from a desirable/undesirable label per completion rather than from pairs."""
ONE_DEVICE = ("orpo", "kto")
"""Losses that would not train on several devices as on one at the same global batch: ORPO averages
its NLL term over each device's own tokens, KTO estimates its KL term from each device's share of the
batch (measured on two ranks: 2.3e-2 and 8.6e-3 off one process's loss; sigmoid 1e-5, SimPO 4e-4)."""
LOSS_TYPES = DPO_LOSS_TYPES + REFERENCE_FREE + UNPAIRED
SCHEDULES = ("cosine", "linear", "constant")
UNPAIRED_FIELDS = frozenset({"prompt", "completion", "label"})
MAX_ROWS = 1_000_000
"""A preference file of more rows is read only this far (trl tokenises every row up front)."""


@own_fields_first
@dataclass(kw_only=True)
class DpoConfig(EvaluatedCheckpoints, TrainingLoopConfig, LoraFields, ShardingField):
    """Preference tuning of a causal LM (DPO and its variants, ORPO, SimPO, KTO) with trl."""

    PRECISIONS: ClassVar[tuple[str, ...]] = ("auto", "fp32", "bf16", "fp16")

    base_model: str
    """The policy's starting point: a Hugging Face causal-LM folder (a lab checkpoint, usually an SFT one)."""
    dataset_path: str
    """Preference pairs (`prompt`/`chosen`/`rejected`, or hh-rlhf `chosen`/`rejected`); for `kto`
    also unpaired labels (`prompt`/`completion`/`label`)."""
    output_dir: str
    """Run folder: Trainer checkpoints `checkpoint-N/`; with LoRA also `adapter/` and `merged/`."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats); it wins over the file's suffix."""
    loss_type: str = "sigmoid"
    """`sigmoid` (DPO), `ipo`, `hinge`, `robust`, … (trl's DPO losses); `orpo` or `simpo` (no
    reference model); `kto` (unpaired desirable/undesirable labels)."""
    beta: float = 0.1
    """How far the policy may move from the reference: higher keeps it closer (IPO's τ; for `orpo`
    the weight λ of the odds-ratio term; for `simpo` the reward scale, 2 to 10 in its paper)."""
    method: str = "full"
    """`full`: every weight trains, the reference is a frozen copy of the base. `lora`: low-rank
    adapters on a frozen base; the reference is the base with the adapters disabled (no copy)."""
    reference_model: str | None = None
    """A model folder to use as the reference instead of the base (full fine-tuning only, same
    tokenizer); null: the base itself."""
    label_smoothing: float = 0.0
    """The chance a label is flipped, in [0, 0.5): `robust` uses it; `exo_pair` needs it above 0."""
    simpo_gamma: float = 0.5
    """SimPO's target reward margin (`simpo` only)."""
    max_length: int = 512
    """Prompt + answer is cut to this many tokens (the answer's end first); at most the model's context."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts answered at every eval, written as the dataset's prompts are (a user message when they
    are conversations, the text itself when they are text); empty: the first two held-out prompts."""
    sample_tokens: int = 64
    """Tokens generated per sample answer (greedy)."""
    lr: float = 5e-6
    schedule: str = "cosine"
    """After warmup: `cosine` down to `lr * min_lr_ratio`, `linear` down to 0, or `constant`."""
    warmup_steps: int = 10
    batch_size: int = 8
    """Pairs per micro-batch (for `kto`, rows: at least 2, its KL estimate pairs rows of a batch)."""
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
        require_choice("loss_type", self.loss_type, LOSS_TYPES)
        require_choice("schedule", self.schedule, SCHEDULES)
        require_at_least_one(self, "lora_r", "max_length", "sample_tokens")
        if self.max_steps == 0 and not self.epochs > 0:
            raise ConfigError("epochs", "must be greater than 0 when max_steps is 0")
        if not 0 < self.beta <= 100:
            raise ConfigError("beta", "must be above 0 and at most 100")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError("label_smoothing", "must be at least 0 and below 0.5")
        if self.loss_type == "exo_pair" and self.label_smoothing == 0:
            raise ConfigError("label_smoothing", "exo_pair needs it above 0 (its paper uses 0.001)")
        if not 0 <= self.simpo_gamma <= 100:
            raise ConfigError("simpo_gamma", "must be between 0 and 100")
        if self.loss_type == "kto" and self.batch_size < 2:
            raise ConfigError("batch_size", "kto needs at least 2 rows a batch: its KL estimate pairs each "
                                            "prompt with another row's answer")
        check_lora(self)
        self._check_sharding()
        if any(not p.strip() for p in self.sample_prompts):
            raise ConfigError("sample_prompts", "must not contain an empty prompt")
        self._check_training_loop()
        self._check_reference()
        self._check_inputs()

    def _check_reference(self) -> None:
        """Which reference a run can have: none for the reference-free losses; with LoRA the base
        with adapters disabled, never a second copy (and never the policy named again)."""
        if self.reference_model is None:
            return
        if self.reference_model == "":
            raise ConfigError("reference_model", "must be a folder or null, not an empty string")
        if self.loss_type in REFERENCE_FREE:
            raise ConfigError("reference_model", f"{self.loss_type} has no reference model: leave it empty")
        same = Path(self.reference_model).resolve() == Path(self.base_model).resolve()
        if self.method == "lora":
            why = ("is the LoRA policy itself" if same else "cannot be combined with method lora")
            raise ConfigError("reference_model", f"{why}: with LoRA the reference is the base with the adapters "
                                                 "disabled, so leave it empty (no second copy is loaded)")
        if same:
            raise ConfigError("reference_model", "is the policy itself: leave it empty, the base is then the reference")

    def _check_inputs(self) -> None:
        """The files exist and fit: a model that serves `max_length` (and has a chat template when
        the data is conversations), a reference with its vocabulary, LoRA targets it has, and data
        of the kind and pairing `loss_type` needs."""
        info = inspect_model_for_length(self.base_model, self.max_length)
        if self.reference_model is not None:
            reference = inspect_model(self.reference_model, "reference_model")
            if reference.vocab_size != info.vocab_size:
                raise ConfigError("reference_model", f"has a vocabulary of {reference.vocab_size} tokens, the base "
                                                     f"{info.vocab_size}: the reference must share the policy's tokenizer")
        if self.method == "lora":
            check_target_modules(self.base_model, self.lora_target_modules)
        require_dataset_file("dataset_path", self.dataset_path)
        shape = data_shape(self.dataset_path, self.dataset_format)
        if shape == "unpaired" and self.loss_type not in UNPAIRED:
            raise ConfigError("dataset", f"{Path(self.dataset_path).name} holds unpaired labels (prompt, completion, "
                                         f"label), and {self.loss_type} learns from pairs: use loss_type kto, or a "
                                         "preference dataset (prompt, chosen, rejected)")
        if self.resume_from is not None:
            resolve_checkpoint(self.resume_from)

    @property
    def uses_lora(self) -> bool:
        return self.method == "lora"

    def check_devices(self, devices: int) -> None:
        """A run of this config on `devices` devices is one the stage trains as on one device."""
        if devices > 1 and self.loss_type in ONE_DEVICE:
            raise ConfigError("devices", f"loss_type {self.loss_type} trains on one device only: on {devices} its "
                                         "loss would be averaged per device, not over the whole batch")


def data_shape(path: str | Path, fmt: str) -> str:
    """`paired` (a preference dataset) or `unpaired` (prompt/completion/label rows), from the first
    record; any other kind is a ConfigError on `dataset` naming it."""
    kind = file_kind(path, fmt, "dataset")
    if kind == "preference":
        return "paired"
    first = next((r for r in Scan(path, name=reader_name(path, fmt)) if not isinstance(r, DatasetError)), None)
    if kind == "sft" and first is not None and UNPAIRED_FIELDS <= set(first.raw.value):
        return "unpaired"
    raise ConfigError("dataset", f"{Path(path).name} is a {kind} dataset; the dpo stage needs a preference dataset "
                                 "(or, for kto, unpaired prompt/completion/label rows)")


def read_rows(path: str | Path, fmt: str) -> tuple[str, list[dict[str, Any]]]:
    """(`paired` or `unpaired`, the rows in trl's shape): `{"prompt", "chosen", "rejected"}` or
    `{"prompt", "completion", "label"}`. The first bad record is a ConfigError on `dataset` naming
    the file, line and field."""
    shape = data_shape(path, fmt)
    kind = "preference" if shape == "paired" else "sft"
    rows = []
    for parsed in Scan(path, kind, name=reader_name(path, fmt)):
        if isinstance(parsed, DatasetError):
            raise ConfigError("dataset", str(parsed))
        rows.append(parsed.record if shape == "paired" else _unpaired(parsed))
        if len(rows) >= MAX_ROWS:
            break
    if not rows:
        raise ConfigError("dataset", f"{Path(path).name} holds no records")
    return shape, rows


def _unpaired(parsed: Any) -> dict[str, Any]:
    """A prompt/completion/label row: the canonical sft record's messages split back at the last
    user turn when they are conversations; the label must be true or false."""
    raw, messages = parsed.raw.value, parsed.record["messages"]
    label = raw.get("label")
    if not isinstance(label, bool):
        error = DatasetError(f"must be true (desirable) or false (undesirable), not {json.dumps(label)[:40]} "
                             f"({json_type(label)})", field="label")
        raise ConfigError("dataset", str(error.located(parsed.raw.file, parsed.raw.line)))
    if isinstance(raw["prompt"], str):
        return {"prompt": raw["prompt"], "completion": raw["completion"], "label": label}
    cut = max(i for i, m in enumerate(messages) if m["role"] == "user") + 1
    return {"prompt": messages[:cut], "completion": messages[cut:], "label": label}
