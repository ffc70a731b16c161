"""Model presets for a Llama-style decoder, and the arithmetic around them.

The web process imports this module to show parameter counts and compute budgets, so it must not
import torch or transformers: presets are plain dicts of `transformers.LlamaConfig` keyword
arguments and every count here is computed by hand (a test compares them with the real model).
"""

from __future__ import annotations

from typing import Any, Protocol

PRESETS: dict[str, dict[str, Any]] = {
    # ~1M parameters at a 2k-4k vocabulary: trains in seconds on a laptop CPU.
    "tiny": {
        "hidden_size": 128,
        "intermediate_size": 344,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-5,
        "initializer_range": 0.02,
    },
    # ~10M parameters at a 16k vocabulary: minutes on one GPU.
    "small": {
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-5,
        "initializer_range": 0.02,
    },
    # GPT-2 small's shape: ~124M parameters at GPT-2's 50257 vocabulary (123.5M exactly).
    "gpt2-124m": {
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": True,
        "rms_norm_eps": 1e-5,
        "initializer_range": 0.02,
    },
}


class _HasBatchShape(Protocol):
    batch_size: int
    grad_accum: int
    context_length: int


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the preset's LlamaConfig keyword arguments; KeyError for an unknown name."""
    return dict(PRESETS[name])


def max_positions(name: str) -> int:
    """The longest context the preset's model can serve."""
    return int(PRESETS[name]["max_position_embeddings"])


def parameter_count(preset: str | dict[str, Any], vocab_size: int) -> int:
    """Exact number of parameters of `LlamaForCausalLM` built from `preset` with `vocab_size`.

    `preset` is a preset name or a LlamaConfig-like dict (so a checkpoint's config.json can be
    counted too). Matches `model.num_parameters()`: no biases, RMSNorm weights, head tied or not.
    """
    p = PRESETS[preset] if isinstance(preset, str) else preset
    hidden = p["hidden_size"]
    heads = p["num_attention_heads"]
    kv_heads = p.get("num_key_value_heads") or heads
    head_dim = p.get("head_dim") or hidden // heads
    inter = p["intermediate_size"]

    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o + k, v
    mlp = 3 * hidden * inter  # gate, up, down
    norms = 2 * hidden  # before attention and before the MLP
    per_layer = attention + mlp + norms

    embeddings = vocab_size * hidden
    head = 0 if p.get("tie_word_embeddings", False) else vocab_size * hidden
    final_norm = hidden
    return embeddings + p["num_hidden_layers"] * per_layer + final_norm + head


def flops_per_token(n_params: int) -> int:
    """Training FLOPs per token: forward (2N) plus backward (4N), ignoring attention's share."""
    return 6 * n_params


def training_flops(n_params: int, tokens: int) -> int:
    """Training FLOPs for `tokens` tokens: the 6·N·D estimate (Kaplan et al. 2020)."""
    return 6 * n_params * tokens


def chinchilla_tokens(n_params: int) -> int:
    """Compute-optimal token budget: about 20 tokens per parameter (Hoffmann et al. 2022)."""
    return 20 * n_params


def tokens_per_step(cfg: _HasBatchShape) -> int:
    """Tokens consumed by one optimizer step: batch × accumulation × context."""
    return cfg.batch_size * cfg.grad_accum * cfg.context_length
