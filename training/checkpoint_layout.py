"""Where every stage keeps its checkpoints, and the one resolver of a `resume_from`.

A checkpoint is `output_dir/checkpoint-N/` (N: the optimizer step), the name transformers' Trainer
gives its folders, so pretrain's own loop and the Trainer stages (sft, classify, …) lay runs out
alike. A folder is a checkpoint when it holds `trainer_state.json`, which both write last.
Pretrain runs saved before the layout was one named theirs `step-NNNNNN/`: they still resolve.

No torch: the configs check a `resume_from` with it in the web process.
"""

from __future__ import annotations

import re
from pathlib import Path

from training.config_checks import ConfigError

CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
EARLIER_PRETRAIN_DIR = re.compile(r"^step-(\d{6,})$")
TRAINER_STATE = "trainer_state.json"


def checkpoint_name(step: int) -> str:
    return f"checkpoint-{step}"


def checkpoint_step(folder: Path) -> int | None:
    """The step a checkpoint folder's name says, or None when the name is not a checkpoint's."""
    match = CHECKPOINT_DIR.match(folder.name) or EARLIER_PRETRAIN_DIR.match(folder.name)
    return int(match.group(1)) if match else None


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint folder of `out_dir` with the highest step, or None."""
    out = Path(out_dir)
    if not out.is_dir():
        return None
    found = [(step, p) for p in out.iterdir()
             if (step := checkpoint_step(p)) is not None and (p / TRAINER_STATE).is_file()]
    return max(found)[1] if found else None


def resolve_checkpoint(path: str | Path, field: str = "resume_from") -> Path:
    """A checkpoint folder as given, or a run folder's highest checkpoint; ConfigError if neither."""
    folder = Path(path)
    if (folder / TRAINER_STATE).is_file():
        return folder
    latest = latest_checkpoint(folder)
    if latest is None:
        raise ConfigError(field, f"{path} is neither a checkpoint folder nor a run folder with checkpoints")
    return latest
