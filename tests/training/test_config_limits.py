"""Absurd numbers are refused by the stage configs (the CLI and the lab both build them), with the limit and its reason."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from training.classify_config import ClassifyConfig
from training.clean_config import CleanConfig
from training.config import ConfigError
from training.config_checks import LIMITS
from training.generate_config import GenerateConfig
from training.pretrain_config import PretrainConfig
from training.sft_config import SftConfig
from training.tokenizer_config import TokenizerConfig

# Placeholder paths: the limits are checked before any file is read.
REQUIRED = {
    TokenizerConfig: {"corpus_path": "c.txt", "output_dir": "o"},
    PretrainConfig: {"corpus_path": "c.txt", "tokenizer_path": "t.json", "output_dir": "o"},
    SftConfig: {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": "o"},
    ClassifyConfig: {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": "o"},
    GenerateConfig: {"models": [{"path": "m", "label": "m"}], "output_dir": "o", "prompts": ["hi"]},
    CleanConfig: {"input_path": "c.txt", "output_dir": "o"},
}


def _error(cls: type, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cls.from_dict({**REQUIRED[cls], **changes})
    return info.value


@pytest.mark.parametrize(("cls", "field", "value", "words"), [
    (PretrainConfig, "max_steps", 10**20, "must be at most 10,000,000: ten million optimizer steps"),
    (PretrainConfig, "lr", 1e6, "must be at most 1: AdamW"),
    (PretrainConfig, "sample_tokens", 10**9, "must be at most 4,096"),
    (PretrainConfig, "eval_batches", 10**9, "must be at most 10,000"),
    (PretrainConfig, "checkpoint_every_minutes", 1e-9, "must be 0 (off) or at least 1: a checkpoint takes seconds"),
    (PretrainConfig, "seed", 2**64, "numpy's generator takes a 32-bit seed"),
    (SftConfig, "max_steps", 10**20, "must be at most 10,000,000"),
    (SftConfig, "epochs", 1e9, "must be at most 1000"),
    (SftConfig, "checkpoint_every_minutes", 1e-9, "at least 1"),
    (SftConfig, "lora_r", 10**6, "must be at most 1,024"),
    (ClassifyConfig, "batch_size", 10**6, "raise grad_accum"),
    (ClassifyConfig, "lr", 2.0, "must be at most 1"),
    (GenerateConfig, "samples_per_prompt", 1000, "must be at most 16"),
    (GenerateConfig, "temperature", 1e9, "must be at most 10"),
    (GenerateConfig, "max_new_tokens", 10**12, "no model this lab trains serves more positions"),
    (TokenizerConfig, "min_frequency", 10**20, "nothing would be merged"),
    (CleanConfig, "near_dup_ngram", 10**9, "must be at most 1,000"),
    (CleanConfig, "seed", 2**70, "32-bit seed"),
])
def test_it_refuses_an_absurd_number_with_the_limit_and_why(cls, field, value, words):
    error = _error(cls, **{field: value})
    assert error.field == field and words in error.message, error


@pytest.mark.parametrize("cls", list(REQUIRED))
def test_it_bounds_every_numeric_field_of_every_stage(cls):
    """Each int or float field has an upper limit (in LIMITS) or a range its own check closes."""
    closed_by_own_check = {"val_fraction", "min_lr_ratio", "beta1", "beta2", "lora_dropout", "top_p", "vocab_size",
                           "warmup_steps", "min_alpha_ratio", "max_repeated_line_ratio", "near_dup_threshold"}
    hints = typing.get_type_hints(cls)
    numeric = {f.name for f in dataclasses.fields(cls) if hints[f.name] in (int, float)}
    assert numeric - set(LIMITS) - closed_by_own_check == set()
    for name in numeric & set(LIMITS):
        assert _error(cls, **{name: LIMITS[name][0] * 2 + 1}).field == name


def test_it_takes_values_at_the_limits():
    cfg = PretrainConfig.from_dict({**REQUIRED[PretrainConfig], "max_steps": 10_000_000, "lr": 1.0,
                                    "checkpoint_every_minutes": 1, "seed": 2**32 - 1})
    assert (cfg.max_steps, cfg.lr, cfg.checkpoint_every_minutes) == (10_000_000, 1.0, 1.0)
