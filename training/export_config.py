"""The export stage's config (`python -m training export`). No torch: the web checks a request with it
before it queues a run; its checks read only the model's config files and safetensors headers."""

from __future__ import annotations

from dataclasses import dataclass

from training.config import CORPUS_FORMATS, _Config
from training.config_checks import DEVICES, ConfigError, check_limits, require_at_least_one, require_choice
from training.model_info import inspect_model

QUANTIZATIONS = ("int8", "nf4")
"""int8: weight-only, one scale per output row, on any machine. nf4: 4-bit, which needs bitsandbytes on
a CUDA GPU; a worker without them refuses it (training/export.py)."""


@dataclass
class ExportConfig(_Config):
    """Quantise a checkpoint for serving, and measure what it costs in perplexity."""

    base_model: str
    """The checkpoint folder to quantise (safetensors)."""
    output_dir: str
    """Run folder: the quantised model is written to `model/` in it."""
    quantization: str = "int8"
    """int8 (weight-only, per output row; any machine) or nf4 (4-bit; bitsandbytes on a GPU only)."""
    eval_path: str | None = None
    """A text corpus to measure perplexity on, before and after; None: sizes only."""
    eval_format: str = "txt"
    """The corpus format of `eval_path` (txt, jsonl, …)."""
    eval_tokens: int = 4096
    """Tokens of the corpus scored for perplexity (the first ones)."""
    context_length: int = 256
    """Tokens per scored window (disjoint windows; capped at the model's own context)."""
    device: str = "auto"
    """`auto` (cuda when available, else cpu), `cpu` or `cuda`; int8 quantises on the CPU either way."""

    def __post_init__(self) -> None:
        self._check_types()
        check_limits(self)
        if not self.output_dir:
            raise ConfigError("output_dir", "must not be empty")
        require_choice("quantization", self.quantization, QUANTIZATIONS)
        require_choice("eval_format", self.eval_format, CORPUS_FORMATS)
        require_choice("device", self.device, DEVICES)
        require_at_least_one(self, "eval_tokens", "context_length")
        if self.eval_tokens > 1_000_000:
            raise ConfigError("eval_tokens", f"must be at most 1,000,000: a quick comparison, not an evaluation (not {self.eval_tokens:,})")
        if self.context_length < 2:
            raise ConfigError("context_length", "must be at least 2: a window predicts each token from those before it")
        inspect_model(self.base_model, "base_model")
