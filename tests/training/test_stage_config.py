"""Configs are checked before any work, and every error names the field the user has to change."""

from __future__ import annotations

from typing import Any

import pytest

from training.config import ConfigError
from training.pretrain_config import PretrainConfig
from training.tokenizer_config import TokenizerConfig

BASE = {"corpus_path": "corpus.txt", "tokenizer_path": "tokenizer.json", "output_dir": "out"}


def _error(cls: type, **d: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        cls.from_dict(d)
    return info.value


def test_it_accepts_the_defaults_and_round_trips():
    cfg = PretrainConfig.from_dict(BASE)
    assert PretrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.preset == "tiny" and cfg.context_length == 128 and cfg.lr == 3e-3


def test_it_rejects_a_zero_learning_rate():
    e = _error(PretrainConfig, **BASE, lr=0)
    assert (e.field, e.message) == ("lr", "learning rate must be greater than 0")
    assert str(e) == "lr: learning rate must be greater than 0"


def test_it_rejects_an_unknown_preset():
    e = _error(PretrainConfig, **BASE, preset="gpt5")
    assert e.field == "preset" and "gpt5" in e.message and "tiny" in e.message


def test_it_rejects_an_unknown_key():
    e = _error(PretrainConfig, **BASE, learning_rate=0.1)
    assert e.field == "learning_rate" and "unknown key" in e.message


def test_it_requires_the_paths():
    e = _error(PretrainConfig, corpus_path="c.txt", output_dir="o")
    assert (e.field, e.message) == ("tokenizer_path", "is required")


@pytest.mark.parametrize(
    ("key", "value"),
    [("batch_size", "16"), ("batch_size", 16.0), ("batch_size", True), ("compile", 1),
     ("lr", "fast"), ("resume_from", 3), ("sample_prompt", None)],
)
def test_it_rejects_wrong_types(key: str, value: Any):
    e = _error(PretrainConfig, **BASE, **{key: value})
    assert e.field == key and "must be" in e.message


def test_it_takes_an_integer_where_a_number_is_expected():
    cfg = PretrainConfig.from_dict({**BASE, "lr": 1, "checkpoint_every_minutes": 5})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert isinstance(cfg.checkpoint_every_minutes, float)


def test_it_rejects_a_context_longer_than_the_model_serves():
    e = _error(PretrainConfig, **BASE, preset="tiny", context_length=4096)
    assert e.field == "context_length" and "1024" in e.message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"warmup_steps": 200, "max_steps": 200}, "warmup_steps"),
        ({"val_fraction": 0.5}, "val_fraction"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"precision": "fp16"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"corpus_format": "docx"}, "corpus_format"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"beta2": 1.0}, "beta2"),
        ({"resume_from": "a/checkpoint-10", "init_from": "b"}, "init_from"),
    ],
)
def test_it_names_the_field_of_a_bad_value(changes: dict[str, Any], field: str):
    assert _error(PretrainConfig, **{**BASE, **changes}).field == field


def test_it_checks_the_tokenizer_config():
    base = {"corpus_path": "c.txt", "output_dir": "o"}
    assert TokenizerConfig.from_dict({**base, "vocab_size": 258}).special_tokens == ["<|endoftext|>", "<|pad|>"]
    e = _error(TokenizerConfig, **base, vocab_size=257)
    assert e.field == "vocab_size" and "258" in e.message
    e = _error(TokenizerConfig, **base, algorithm="sentencepiece")
    assert e.field == "algorithm" and "bpe" in e.message
    assert _error(TokenizerConfig, **base, special_tokens=[]).field == "special_tokens"
    assert _error(TokenizerConfig, **base, min_frequency=0).field == "min_frequency"
    assert _error(TokenizerConfig, **base, vocab_size=2_000_000).field == "vocab_size"


def test_it_rejects_a_config_that_is_not_an_object():
    with pytest.raises(ConfigError) as info:
        PretrainConfig.from_dict(["lr", 0.1])  # type: ignore[arg-type]
    assert info.value.field == "config"
