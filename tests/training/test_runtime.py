"""training/runtime.py: the device, the precision and the seeds, one resolver for every stage."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from training.config import ConfigError
from training.runtime import autocast_for, pick_device, resolve_precision, seed_everything

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_precision_is_fp32_on_a_cpu():
    assert resolve_precision("auto", CPU) == "fp32"


@pytest.mark.parametrize(("bf16_supported", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_a_gpu_is_bf16_where_the_gpu_supports_it(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert resolve_precision("auto", CUDA) == expected


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_a_cpu_is_refused_on_the_precision_field(precision):
    with pytest.raises(ConfigError) as e:
        resolve_precision(precision, CPU)
    assert e.value.field == "precision" and f"{precision} needs a GPU" in e.value.message


def test_a_stage_may_allow_bf16_autocast_on_a_cpu_but_not_fp16():
    assert resolve_precision("bf16", CPU, bf16_on_cpu=True) == "bf16"
    with pytest.raises(ConfigError):
        resolve_precision("fp16", CPU, bf16_on_cpu=True)


def test_an_explicit_precision_is_kept():
    assert resolve_precision("fp32", CPU) == "fp32"
    assert resolve_precision("bf16", CUDA) == "bf16"
    assert resolve_precision("fp16", CUDA) == "fp16"


def test_autocast_is_on_for_bf16_only():
    x = torch.ones(2, 2)
    with autocast_for("bf16", CPU):
        assert (x @ x).dtype == torch.bfloat16
    with autocast_for("fp32", CPU):
        assert (x @ x).dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_is_refused_and_auto_is_the_cpu():
    assert pick_device("auto") == CPU
    with pytest.raises(ConfigError) as e:
        pick_device("cuda")
    assert e.value.field == "device"


def test_seeding_makes_every_generator_repeat():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    seed_everything(7)
    first = draws()
    seed_everything(7)
    assert draws() == first
    seed_everything(8)
    assert draws() != first
