"""The pretrain stage's config (`python -m training pretrain`): torch-free, the web checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from training import presets
from training.checkpoint_evals import EvaluatedCheckpoints
from training.config import TimedCheckpoints, TrainingLoopConfig, _check_corpus, own_fields_first
from training.config_checks import ConfigError, check_limits, require_at_least_one, require_folder_or_null, require_not_negative


@own_fields_first
@dataclass(kw_only=True)
class PretrainConfig(EvaluatedCheckpoints, TimedCheckpoints, TrainingLoopConfig):
    """Pretrain a Llama-style decoder, from scratch or on (`python -m training pretrain`).

    Launched on N devices (torchrun), `batch_size` is the global micro-batch: each rank reads its
    N-th of every batch, so the run trains as one device would with the same `batch_size`.
    """

    BF16_ON_CPU: ClassVar[bool] = True

    corpus_path: str
    """Path of the text corpus to train on."""
    tokenizer_path: str
    """Path of the `tokenizer.json` written by the tokenizer stage."""
    output_dir: str
    """Run folder: `tokens.bin` and the `checkpoint-200/` checkpoints are written here."""
    corpus_format: str = "txt"
    """`txt`: documents split by blank lines; `jsonl`: one JSON object a line with a `text`."""
    preset: str = "tiny"
    """Model shape: `tiny` (~1M), `small` (~10M) or `gpt2-124m`. Ignored with `init_from`."""
    context_length: int = 128
    """Tokens per training sequence; at most the model's max position embeddings."""
    lr: float = 3e-3
    weight_decay: float = 0.1
    beta2: float = 0.95
    compile: bool = False
    """Compile the model with `torch.compile` (slow to start, faster per step on GPU)."""
    eval_batches: int = 10
    """Validation batches per evaluation; always the same ones, so evaluations compare."""
    sample_every: int = 100
    """Generate a text sample every this many steps; 0 turns samples off."""
    sample_prompt: str = ""
    """Prompt of the samples; empty starts from the end-of-text token."""
    sample_tokens: int = 64
    """Tokens generated per sample."""
    init_from: str | None = None
    """A Hugging Face model folder to continue pretraining: its weights and shape, new optimizer."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        _check_corpus(self.corpus_path, self.corpus_format)
        for name in ("tokenizer_path", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        if self.preset not in presets.PRESETS:
            choices = ", ".join(presets.PRESETS)
            raise ConfigError("preset", f"unknown preset {self.preset!r} (choose from {choices})")
        if self.context_length < 2:
            raise ConfigError("context_length", "must be at least 2")
        longest = presets.max_positions(self.preset)
        if self.init_from is None and self.context_length > longest:
            raise ConfigError(
                "context_length",
                f"{self.context_length} is longer than the {longest} positions "
                f"the {self.preset} model can serve",
            )
        require_at_least_one(self, "max_steps", "eval_batches", "sample_tokens")
        require_not_negative(self, "sample_every", "checkpoint_every_minutes")
        self._check_training_loop()
        if self.resume_from is not None and self.init_from is not None:
            raise ConfigError(
                "init_from", "cannot be combined with resume_from (a resume restores the weights)"
            )
        require_folder_or_null(self, "init_from")
