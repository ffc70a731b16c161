"""Where a stage runs, for every stage alike: the device, the precision, the seeds."""

from __future__ import annotations

import random
from contextlib import AbstractContextManager

import numpy as np
import torch

from training.config import ConfigError

HALF_PRECISIONS = ("bf16", "fp16")


def pick_device(name: str) -> torch.device:
    """`auto`: the GPU when one is visible, else the CPU; `cuda` without one is a ConfigError."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no GPU is visible to this process")
    if name == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: the usual speed/precision trade
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


def resolve_precision(precision: str, device: torch.device, *, bf16_on_cpu: bool = False) -> str:
    """The precision a run trains in: `auto` is bf16 on a GPU that supports it, else fp32.

    Half precision asked for on a CPU is a ConfigError, except bf16 where the stage allows it
    (`bf16_on_cpu`: pretrain's own loop autocasts to bf16 on a CPU as well).
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision in HALF_PRECISIONS and device.type != "cuda" and not (precision == "bf16" and bf16_on_cpu):
        raise ConfigError("precision", f"{precision} needs a GPU, and this run has none: use fp32")
    return precision


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager:
    """Mixed precision for a hand-written loop: bf16 autocast, or nothing (fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def weights_dtype(precision: str) -> torch.dtype:
    """The dtype to load weights in for a precision `resolve_precision` gave (inference: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
