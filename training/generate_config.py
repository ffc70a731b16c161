"""The generate stage's config (`python -m training generate`). No torch: the web validates a cell's
form with it before it queues a run; the checks that read files read only config files, safetensors
headers and a prompt file's first record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.config import _Config
from training.config_checks import (
    DEVICES,
    ConfigError,
    check_limits,
    require_at_least_one,
    require_choice,
    require_not_negative,
)
from training.dataset_files import check_format, require_dataset_file
from training.model_info import inspect_model
from training.prompts import prompts_file_kind

MODEL_KEYS = ("path", "label", "artifact")


@dataclass
class GenerateConfig(_Config):
    """Sample K responses per prompt from one or more checkpoints, for human comparison."""

    models: list[dict]
    """The checkpoints: `{"path": folder, "label": name shown and recorded, "artifact": the lab's
    artifact id or null}`; labels are unique."""
    output_dir: str
    """Run folder: `generations.jsonl` is written here."""
    prompts: list[str] = field(default_factory=list)
    """Prompts typed in, one string each (a user message). Either these or `prompts_path`."""
    prompts_path: str | None = None
    """A dataset to take prompts from: sft (the conversation before its last reply), preference
    (its prompt), eval (its question), or a jsonl file of `{"prompt": …}`."""
    prompts_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats) of `prompts_path`."""
    max_prompts: int = 100
    """Use at most this many prompts (the first ones)."""
    samples_per_prompt: int = 2
    """K: responses sampled per prompt from each model."""
    temperature: float = 0.8
    """Softmax temperature; 0 is greedy decoding (one response per prompt)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the most likely tokens whose probabilities sum to top_p; 1 keeps all."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 keeps all."""
    max_new_tokens: int = 128
    """Tokens generated at most per response."""
    seed: int = 0
    """Each response is sampled with its own seed made from this, the model's label, the prompt and
    the sample number: a rerun reproduces every response."""
    use_chat_template: bool = True
    """Render prompts with the model's chat template when it has one (else they are raw text)."""
    batch_size: int = 8
    """Responses generated at once."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        if not self.output_dir:
            raise ConfigError("output_dir", "must not be empty")
        self._check_models()
        if bool(self.prompts) == (self.prompts_path is not None):
            raise ConfigError("prompts", "give either prompts (typed in) or prompts_path (a dataset), not both or neither")
        for i, prompt in enumerate(self.prompts):
            if not prompt.strip():
                raise ConfigError(f"prompts[{i}]", "must not be empty")
        check_format("prompts_format", self.prompts_format)
        require_at_least_one(self, "max_prompts", "samples_per_prompt", "max_new_tokens", "batch_size")
        require_not_negative(self, "top_k", "seed", "temperature")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", "must be above 0 and at most 1")
        if self.temperature == 0 and self.samples_per_prompt > 1:
            raise ConfigError(
                "samples_per_prompt", "greedy decoding (temperature 0) gives one response per prompt; use 1"
            )
        require_choice("device", self.device, DEVICES)
        self._check_inputs()

    def _check_models(self) -> None:
        if not self.models:
            raise ConfigError("models", "needs at least one checkpoint")
        labels: set[str] = set()
        for i, model in enumerate(self.models):
            where = f"models[{i}]"
            for key in model:
                if key not in MODEL_KEYS:
                    raise ConfigError(f"{where}.{key}", f"unknown key (known keys: {', '.join(MODEL_KEYS)})")
            for key in ("path", "label"):
                if not isinstance(model.get(key), str) or not model[key].strip():
                    raise ConfigError(f"{where}.{key}", "must be a non-empty string")
            artifact: Any = model.setdefault("artifact", None)
            if artifact is not None and (not isinstance(artifact, int) or isinstance(artifact, bool)):
                raise ConfigError(f"{where}.artifact", f"must be an integer or null, not {artifact!r}")
            if model["label"] in labels:
                raise ConfigError(f"{where}.label", f"{model['label']!r} labels two models; labels must differ")
            labels.add(model["label"])

    def _check_inputs(self) -> None:
        """Every model folder holds a model with room for max_new_tokens; the prompt file is of a
        kind that has prompts."""
        for i, model in enumerate(self.models):
            where = f"models[{i}].path"
            info = inspect_model(model["path"], where)
            if info.context_length is not None and self.max_new_tokens >= info.context_length:
                raise ConfigError(
                    "max_new_tokens",
                    f"{self.max_new_tokens} leaves no room for a prompt in the {info.context_length} "
                    f"positions of {model['label']}",
                )
        if self.prompts_path is not None:
            require_dataset_file("prompts_path", self.prompts_path)
            prompts_file_kind(self.prompts_path, self.prompts_format)
