"""Parameter counts and budgets, computed without torch, checked against the real model."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from training import presets
from training.pretrain_config import PretrainConfig


@pytest.mark.parametrize("preset", sorted(presets.PRESETS))
@pytest.mark.parametrize("vocab_size", [512, 50257])
def test_it_counts_parameters_exactly(preset: str, vocab_size: int):
    with torch.device("meta"):  # shapes only: the 124M model costs no memory or init time
        model = LlamaForCausalLM(LlamaConfig(**presets.get_preset(preset), vocab_size=vocab_size))
    assert presets.parameter_count(preset, vocab_size) == model.num_parameters()


def test_it_counts_an_untied_head_and_grouped_query_attention():
    shape = {**presets.get_preset("tiny"), "tie_word_embeddings": False, "num_key_value_heads": 2}
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape, vocab_size=1000))
    assert presets.parameter_count(shape, 1000) == model.num_parameters()


def test_it_sizes_the_presets_as_named():
    assert 0.8e6 < presets.parameter_count("tiny", 3000) < 1.3e6
    assert 8e6 < presets.parameter_count("small", 16000) < 12e6
    assert 123e6 < presets.parameter_count("gpt2-124m", 50257) < 125e6


def test_it_computes_budgets():
    cfg = PretrainConfig(
        corpus_path="c.txt", tokenizer_path="t.json", output_dir="o",
        batch_size=8, grad_accum=4, context_length=256,
    )
    assert presets.tokens_per_step(cfg) == 8 * 4 * 256
    assert presets.flops_per_token(1_000_000) == 6_000_000
    assert presets.training_flops(1_000_000, 2_000) == 12_000_000_000
    assert presets.chinchilla_tokens(124_000_000) == 2_480_000_000
