"""The error every stage config raises, and the checks several stage configs share.

No torch: the web process imports the configs to validate a cell's form before it queues a run.
`training.config` re-exports `ConfigError`, so `from training.config import ConfigError` stays the
way to reach it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

DEVICES = ("auto", "cpu", "cuda")
# The folders transformers' Trainer saves (the sft and classify stages): `checkpoint-N/`.
TRAINER_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"


class ConfigError(Exception):
    """A config value the stage cannot run with. `field` names the key the user has to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Optimized(Protocol):
    lr: float
    min_lr_ratio: float
    beta1: float
    beta2: float
    weight_decay: float
    grad_clip: float


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


def resolve_resume(path: str) -> Path:
    """A Trainer checkpoint folder as given, or a run folder's highest `checkpoint-N`."""
    folder = Path(path)
    if (folder / TRAINER_STATE).is_file():
        return folder
    found = []
    if folder.is_dir():
        found = [
            (int(m.group(1)), p)
            for p in folder.iterdir()
            if (m := TRAINER_CHECKPOINT.match(p.name)) and (p / TRAINER_STATE).is_file()
        ]
    if not found:
        raise ConfigError(
            "resume_from", f"{path} is neither a checkpoint folder nor a run folder with checkpoints"
        )
    return max(found)[1]
