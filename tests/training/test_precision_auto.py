"""`precision: auto` is taken by every training stage: bf16 on a GPU that has it, else fp32
(training/runtime.py resolves it). Explicit choices keep their meaning: pretrain's bf16
autocast on a CPU too, half precision refused on a CPU elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.training.fixtures import SFT_MESSAGES, classify_config
from tests.training.helpers import FakeReporter, tiny_config
from training.classify_config import ClassifyConfig
from training.config import ConfigError
from training.pretrain_config import PretrainConfig
from training.sft_config import SftConfig


@pytest.mark.parametrize("config", [PretrainConfig, SftConfig, ClassifyConfig])
def test_every_stage_takes_auto_and_defaults_to_it(config: type):
    assert "auto" in config.PRECISIONS
    assert {f.name: f.default for f in dataclasses.fields(config)}["precision"] == "auto"


def test_pretrain_takes_auto(corpus, tokenizer_path, run_dir: Path):
    cfg = tiny_config(corpus, tokenizer_path, run_dir, max_steps=2, warmup_steps=0, device="cpu")
    assert _trained_in(cfg | {"precision": "auto"}) == "fp32"


def _trained_in(cfg: dict) -> str:
    from training.pretrain import pretrain

    reporter = FakeReporter()
    assert pretrain(PretrainConfig.from_dict(cfg), reporter) is not None
    return reporter.of_type("status")[0]["summary"]["precision"]


def test_pretrain_autocasts_to_bf16_on_a_cpu_when_asked(corpus, tokenizer_path, run_dir: Path):
    cfg = tiny_config(corpus, tokenizer_path, run_dir, max_steps=2, warmup_steps=0, device="cpu")
    cfg["precision"] = "bf16"
    assert _trained_in(cfg) == "bf16"


def test_classify_takes_auto_and_refuses_bf16_on_a_cpu(base_model, sms_spam_subset, tmp_path: Path):
    cfg = classify_config(base_model, sms_spam_subset, tmp_path / "run")
    assert ClassifyConfig.from_dict(cfg | {"precision": "auto"}).precision == "auto"
    with pytest.raises(ConfigError) as e:
        ClassifyConfig.from_dict(cfg | {"precision": "bf16"})
    assert e.value.field == "precision"
    assert e.value.message == "bf16 needs a GPU; on cpu use fp32 or auto"
    with pytest.raises(ConfigError) as e:
        ClassifyConfig.from_dict(cfg | {"precision": "fp16"})
    assert e.value.field == "precision" and "auto, fp32 or bf16" in e.value.message


def test_sft_still_takes_fp16(base_model, tmp_path: Path):
    cfg = {"base_model": str(base_model), "dataset_path": str(SFT_MESSAGES),
           "output_dir": str(tmp_path),
           "max_length": 128, "device": "cuda", "precision": "fp16"}
    assert SftConfig.from_dict(cfg).precision == "fp16"
