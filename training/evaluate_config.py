"""The evaluate stage's config (`python -m training evaluate`). No torch: the web validates a cell's
form with it before it queues a run; the checks that read files read only config files, safetensors
headers and the dataset's first record."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.answers import HOWS, compile_pattern
from training.config import _Config
from training.config_checks import (
    DEVICES,
    ConfigError,
    check_limits,
    require_at_least_one,
    require_choice,
    require_not_negative,
)
from training.dataset_files import check_format, file_kind, read_records, require_dataset_file
from training.generate_config import MODEL_KEYS
from training.model_info import inspect_model

PERPLEXITY = "perplexity"
MULTIPLE_CHOICE = "multiple_choice"
GENERATION = "generation"
CLASSIFICATION = "classification"
TASKS = ("auto", PERPLEXITY, MULTIPLE_CHOICE, GENERATION, CLASSIFICATION)
TASK_OF_KIND = {"text": PERPLEXITY, "classification": CLASSIFICATION}
"""The task a dataset kind is evaluated with; an eval dataset's is multiple choice when its records
have choices, else generation."""
MC_STYLES = ("text", "letters")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_FEWSHOT = 25
MAX_EXAMPLES = 100_000
MAX_SAMPLES = 64


@dataclass
class EvaluateConfig(_Config):
    """Score one or more checkpoints on one dataset: perplexity (text), multiple-choice accuracy or
    generative exact match (eval), classification metrics (classification)."""

    models: list[dict] = field(default_factory=list)
    """The checkpoints: `{"path": folder, "label": name shown and recorded, "artifact": the lab's
    artifact id or null}`; labels are unique. The stage needs at least one; evaluating a checkpoint
    during training (`evaluate_checkpoint`) names its own."""
    output_dir: str = ""
    """Run folder: `results.jsonl` (one line per example and model) is written here."""
    dataset_path: str = ""
    """The dataset: text (perplexity), eval (multiple choice when its records have choices, else
    generation) or classification (a classifier checkpoint's accuracy)."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, txt, … (training.datasets' formats) of `dataset_path`."""
    task: str = "auto"
    """What to measure: `auto` (from the dataset's kind), perplexity, multiple_choice, generation or
    classification."""
    max_examples: int = 500
    """Evaluate at most this many examples (the first ones; documents for perplexity)."""
    num_fewshot: int = 0
    """Multiple choice and generation: solved examples put before each question, taken from the other
    examples of the file (of the same subject first)."""
    mc_style: str = "text"
    """Multiple choice: `text` scores each choice's text after `Answer:`; `letters` lists the choices
    as A. B. C. D. and scores the letter (MMLU's prompt)."""
    context_length: int = 0
    """Perplexity: positions a window holds; 0 is the model's context length."""
    stride: int = 0
    """Perplexity: new tokens each window scores. 0: context_length, chunks whose tokens see only their
    own chunk before them; a smaller stride slides the window, so every token scored sees at least
    context_length - stride tokens before it (or all of its document's)."""
    answer_extraction: str = "gsm8k"
    """Generation: how the answer is read from a response (and a reference): `gsm8k` (after `####`),
    `last_number`, or a regular expression (its first group)."""
    samples: int = 1
    """Generation: responses per question (k of pass@k); more than one needs a temperature above 0."""
    temperature: float = 0.0
    """Generation: softmax temperature; 0 is greedy decoding."""
    top_p: float = 1.0
    """Generation: nucleus sampling; 1 keeps all tokens."""
    top_k: int = 0
    """Generation: keep only the k most likely tokens; 0 keeps all."""
    max_new_tokens: int = 256
    """Generation: tokens generated at most per response."""
    use_chat_template: bool = False
    """Generation: ask the question through the model's chat template (when it has one) instead of
    the raw `Question: … Answer:` prompt."""
    reward_model: str | None = None
    """Generation: a reward model's folder (a reward run's checkpoint). Each response gets its reward:
    `reward` is their mean, and `win_rate` how often a model's answer to a question outscores the
    baseline's (a tie counts half)."""
    baseline: str | None = None
    """Generation with a reward model: the label of the model the others' win rate is against; null:
    the first model."""
    seed: int = 0
    """Each sampled response has its own seed made from this: a rerun reproduces every response."""
    batch_size: int = 8
    """Sequences scored or generated at once."""
    bootstrap_samples: int = 1000
    """Resamples for the bootstrap intervals (metrics that are not a proportion)."""
    precision: str = "auto"
    """`auto` (bf16 on a GPU that supports it, else fp32), fp32 or bf16."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        require_choice("task", self.task, TASKS)
        require_choice("mc_style", self.mc_style, MC_STYLES)
        require_choice("precision", self.precision, PRECISIONS)
        require_choice("device", self.device, DEVICES)
        check_format("dataset_format", self.dataset_format)
        require_at_least_one(self, "max_examples", "samples", "max_new_tokens", "batch_size", "bootstrap_samples")
        require_not_negative(self, "num_fewshot", "context_length", "stride", "top_k", "seed", "temperature")
        for name, limit in (("max_examples", MAX_EXAMPLES), ("num_fewshot", MAX_FEWSHOT), ("samples", MAX_SAMPLES),
                            ("bootstrap_samples", 100_000)):
            if getattr(self, name) > limit:
                raise ConfigError(name, f"must be at most {limit:,} (not {getattr(self, name):,})")
        if self.context_length and self.stride > self.context_length:
            raise ConfigError("stride", f"must be at most context_length ({self.context_length}): a window holds "
                                        "the tokens it scores")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", "must be above 0 and at most 1")
        if self.temperature == 0 and self.samples > 1:
            raise ConfigError("samples", "greedy decoding (temperature 0) gives one response per question; use 1, "
                                         "or a temperature above 0 for pass@k")
        if self.answer_extraction not in HOWS:
            try:
                compile_pattern(self.answer_extraction)
            except ValueError as e:
                raise ConfigError("answer_extraction", str(e)) from None
        self._check_models()
        if self.dataset_path:
            self.task = self.resolved_task()
        self._check_reward()

    def _check_reward(self) -> None:
        labels = [m["label"] for m in self.models]
        if self.baseline is not None and self.baseline not in labels:
            raise ConfigError("baseline", f"{self.baseline!r} is not one of the models' labels ({', '.join(labels) or 'none'})")
        if self.reward_model is None:
            return
        if self.task not in ("auto", GENERATION):
            raise ConfigError("reward_model", f"scores generated answers: a {self.task} evaluation generates none")
        info = inspect_model(self.reward_model, "reward_model")
        if info.architecture.endswith("ForCausalLM"):
            raise ConfigError("reward_model", f"{info.architecture} is a language model, not a reward model "
                                              "(a sequence classifier with one output)")

    def _check_models(self) -> None:
        labels: set[str] = set()
        for i, model in enumerate(self.models):
            where = f"models[{i}]"
            if not isinstance(model, dict):
                raise ConfigError(where, "must be an object with path, label and artifact")
            for key in model:
                if key not in MODEL_KEYS:
                    raise ConfigError(f"{where}.{key}", f"unknown key (known keys: {', '.join(MODEL_KEYS)})")
            for key in ("path", "label"):
                if not isinstance(model.get(key), str) or not model[key].strip():
                    raise ConfigError(f"{where}.{key}", "must be a non-empty string")
            artifact = model.setdefault("artifact", None)
            if artifact is not None and (not isinstance(artifact, int) or isinstance(artifact, bool)):
                raise ConfigError(f"{where}.artifact", f"must be an integer or null, not {artifact!r}")
            if model["label"] in labels:
                raise ConfigError(f"{where}.label", f"{model['label']!r} labels two models; labels must differ")
            labels.add(model["label"])
            info = inspect_model(model["path"], f"{where}.path")
            if self.context_length and info.context_length and self.context_length > info.context_length:
                raise ConfigError("context_length", f"{self.context_length} is more than the {info.context_length} "
                                                    f"positions of {model['label']}")

    def resolved_task(self) -> str:
        """The task the dataset's kind calls for; a task asked for that does not fit it is an error."""
        require_dataset_file("dataset_path", self.dataset_path)
        kind = file_kind(self.dataset_path, self.dataset_format, "dataset")
        if kind == "eval":
            first = next(read_records(self.dataset_path, self.dataset_format, "eval"), {})
            fits = MULTIPLE_CHOICE if "choices" in first else GENERATION
        elif kind in TASK_OF_KIND:
            fits = TASK_OF_KIND[kind]
        else:
            raise ConfigError("dataset", f"a {kind} dataset cannot be evaluated: give a text, eval or classification dataset")
        if self.task not in ("auto", fits):
            raise ConfigError("task", f"the {kind} dataset {self.dataset_path.rsplit('/', 1)[-1]} is evaluated with "
                                      f"{fits}, not {self.task}")
        return fits
