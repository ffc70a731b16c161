"""The error every stage config raises, and the checks several stage configs share.

No torch: the web process imports the configs to validate a cell's form before it queues a run.
`training.config` re-exports `ConfigError`, so `from training.config import ConfigError` stays the
way to reach it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

DEVICES = ("auto", "cpu", "cuda")


class ConfigError(Exception):
    """A config value the stage cannot run with. `field` names the key the user has to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


MAX_STEPS = 10_000_000
MAX_SEQUENCE = 1_048_576
LIMITS: dict[str, tuple[int | float, str]] = {
    "max_steps": (MAX_STEPS, "ten million optimizer steps take days even at the tiny model's pace; more is a typo"),
    "eval_every": (MAX_STEPS, "no run has more steps"),
    "sample_every": (MAX_STEPS, "no run has more steps"),
    "checkpoint_every_steps": (MAX_STEPS, "no run has more steps"),
    "log_every": (MAX_STEPS, "no run has more steps"),
    "batch_size": (4096, "a larger micro-batch fits in no GPU's memory; raise grad_accum for a larger batch"),
    "grad_accum": (4096, "a step of more micro-batches is a batch of millions of sequences, larger than any run needs"),
    "eval_batches": (10_000, "each evaluation would outlast the training between two"),
    "sample_tokens": (4096, "a sample is generated at every evaluation; a longer one outlasts the training between two"),
    "context_length": (MAX_SEQUENCE, "no model this lab trains serves more positions"),
    "max_length": (MAX_SEQUENCE, "no model this lab trains serves more positions"),
    "max_new_tokens": (MAX_SEQUENCE, "no model this lab trains serves more positions"),
    "lr": (1.0, "AdamW moves each weight by about lr a step: past 1 training only diverges (typical peaks: 1e-5 to 1e-2)"),
    "weight_decay": (1.0, "AdamW shrinks each weight by lr x weight_decay a step; typical values are 0 to 0.1"),
    "grad_clip": (1000.0, "a larger norm clips nothing; 0 turns clipping off"),
    "seed": (2**32 - 1, "numpy's generator takes a 32-bit seed"),
    "checkpoint_every_minutes": (7 * 24 * 60.0, "a week between checkpoints is none; 0 turns them off"),
    "epochs": (1000.0, "a thousand passes only memorise the data"),
    "lora_r": (1024, "an adapter of higher rank is larger than the layers it adapts"),
    "lora_alpha": (4096.0, "alpha / r scales the adapters; usually alpha is 1 to 2 times lora_r"),
    "max_prompts": (100_000, "every model answers each prompt samples_per_prompt times: more is days of generation"),
    "samples_per_prompt": (16, "pairs to judge grow with the square of the samples per prompt"),
    "temperature": (10.0, "sampling above 10 is nearly uniform over the vocabulary: noise"),
    "top_k": (1_000_000, "no vocabulary is larger"),
    "min_frequency": (1_000_000_000, "no pair occurs more often in a corpus the lab takes, so nothing would be merged"),
    "near_dup_ngram": (1000, "documents share no run of more words than that unless they are copies, which exact dedup removes"),
    "min_chars": (10_000_000, "no document the lab takes is longer, so every one would be removed"),
    "max_chars": (1_000_000_000, "no corpus line or document the lab reads is longer"),
}
"""The largest sane value of each numeric config field, with the reason an error gives: every stage
config checks the fields it has, so an absurd value is refused before a run exists."""
MIN_CHECKPOINT_MINUTES = 1.0


def check_limits(cfg: object) -> None:
    """Every attribute of `cfg` named in LIMITS at most its limit; checkpoints no more often than a
    minute. `cfg` is a stage config, or any object with some of its fields (a form's values)."""
    for name, (limit, reason) in LIMITS.items():
        value = getattr(cfg, name, None)
        if isinstance(value, (int, float)) and value > limit:
            raise ConfigError(name, f"must be at most {_number(limit)}: {reason} (not {_number(value)})")
    minutes = getattr(cfg, "checkpoint_every_minutes", None) or 0
    if 0 < minutes < MIN_CHECKPOINT_MINUTES:
        raise ConfigError("checkpoint_every_minutes", f"must be 0 (off) or at least {MIN_CHECKPOINT_MINUTES:g}: "
                                                      f"a checkpoint takes seconds to write, so more often the run "
                                                      f"mostly saves (not {minutes:g})")


def _number(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


class _Optimized(Protocol):
    lr: float
    min_lr_ratio: float
    beta1: float
    beta2: float
    weight_decay: float
    grad_clip: float


def refuse_unknown_keys(config: dict, known: Sequence[str]) -> None:
    """A ConfigError on the first key of `config` that is not in `known`, listing the known ones."""
    for key in config:
        if key not in known:
            raise ConfigError(key, f"unknown key (known keys: {', '.join(known)})")


def require_choice(field: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        options = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
        raise ConfigError(field, f"must be {options}, not {value!r}")


def require_at_least_one(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ConfigError(name, "must be at least 1")


def require_not_negative(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(name, "must not be negative")


def require_folder_or_null(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) == "":
            raise ConfigError(name, "must be a folder or null, not an empty string")


def check_lora(cfg: object) -> None:
    """LoRA's scaling numerator above 0 and its dropout in [0, 1)."""
    if not cfg.lora_alpha > 0:
        raise ConfigError("lora_alpha", "must be greater than 0")
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError("lora_dropout", "must be at least 0 and below 1")


def check_optimizer(cfg: _Optimized) -> None:
    """AdamW and its schedule: lr > 0, min_lr_ratio in [0, 1], betas in [0, 1), no negative decay
    or clip."""
    if not cfg.lr > 0:
        raise ConfigError("lr", "learning rate must be greater than 0")
    if not 0 <= cfg.min_lr_ratio <= 1:
        raise ConfigError("min_lr_ratio", "must be between 0 and 1")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ConfigError(name, "must be at least 0 and below 1")
    require_not_negative(cfg, "weight_decay", "grad_clip")


def check_warmup(warmup_steps: int, max_steps: int) -> None:
    """Warmup must end before training does (`max_steps` 0: the length is not known yet)."""
    if warmup_steps < 0 or (max_steps and warmup_steps >= max_steps):
        raise ConfigError(
            "warmup_steps", f"must be at least 0 and fewer than max_steps ({max_steps})"
        )
