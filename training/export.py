"""The export stage: a checkpoint quantised for serving, with its size and a quick perplexity
comparison against the full-precision model. `setup` loads the model and the scored text, `fit`
quantises, writes, reloads what it wrote and scores both (the shape of every stage: training/stages.py).

int8 is weight-only and per output row: each Linear's weight becomes int8 values with one float
scale per row (absmax / 127), dequantised in its forward; embeddings, norms and a head tied to the
embeddings stay as they are. torch's own `quantize_dynamic` was the first candidate, but it packs
the weights into opaque objects that only a pickle can save, and the lab loads safetensors only. So
the int8 weights and their scales are written as plain safetensors tensors (`<layer>.weight`, int8,
and `<layer>.weight_scale`), and `load_int8` rebuilds the model from them. transformers'
`from_pretrained` does not know this layout; the folder's config names it (`quantization_config`)
and the folder keeps its weights in `model.int8.safetensors`, so a plain `from_pretrained` fails
loudly ("no file named model.safetensors") instead of loading int8 values as if they were floats.

nf4 (4-bit) needs bitsandbytes on a CUDA GPU: a worker without both refuses it, saying so.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from training.base_model import SAFE_LOADING, load_base_model, load_base_tokenizer
from training.config import ConfigError
from training.corpus import iter_documents
from training.events import Reporter
from training.export_config import ExportConfig
from training.model_files import not_safetensors
from training.runtime import pick_device

INT8_METHOD = "lab_int8_weight_only"
INT8_WEIGHTS = "model.int8.safetensors"
MODEL_DIR = "model"


class Int8Linear(nn.Module):
    """A Linear whose weight is int8 with one scale per output row, dequantised at each forward."""

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features, 1))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @classmethod
    def quantize(cls, linear: nn.Linear) -> Int8Linear:
        weight = linear.weight.detach().float()
        scale = (weight.abs().amax(dim=1, keepdim=True) / 127).clamp_min(torch.finfo(torch.float32).tiny)
        module = cls(linear.in_features, linear.out_features, linear.bias is not None)
        module.weight.copy_(torch.round(weight / scale).clamp(-127, 127).to(torch.int8))
        module.weight_scale.copy_(scale)
        if linear.bias is not None:
            module.bias.data.copy_(linear.bias.detach())
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.to(x.dtype) * self.weight_scale.to(x.dtype), self.bias)


def quantizable_linears(model: PreTrainedModel) -> list[str]:
    """The names of the Linear layers int8 quantises: all but one sharing its weight with the embeddings."""
    embeddings = model.get_input_embeddings().weight
    return [name for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and module.weight is not embeddings]


def _replace(model: nn.Module, names: list[str], make) -> None:
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(getattr(parent, child)))


def quantize_int8(model: PreTrainedModel) -> list[str]:
    """Quantise the model's Linear layers in place; returns their names."""
    names = quantizable_linears(model)
    _replace(model, names, Int8Linear.quantize)
    return names


def load_int8(folder: str | Path, field: str = "model") -> PreTrainedModel:
    """The int8 model an export wrote to `folder`, from its config and safetensors weights alone."""
    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder, **SAFE_LOADING)
    quantization = getattr(config, "quantization_config", None) or {}
    if quantization.get("quant_method") != INT8_METHOD:
        raise ConfigError(field, f"{folder.name} is not an int8 export of this lab (its config names no {INT8_METHOD})")
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    _replace(model, quantization["modules"], lambda m: Int8Linear(m.in_features, m.out_features, m.bias is not None))
    missing, unexpected = load_model(model, folder / INT8_WEIGHTS, strict=True)
    assert not missing and not unexpected  # strict=True raises first
    return model.eval()


@dataclass
class ExportRun:
    cfg: ExportConfig
    reporter: Reporter
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    windows: list[torch.Tensor]
    """The scored text, as disjoint windows of token ids (empty without `eval_path`)."""


def setup(cfg: ExportConfig, reporter: Reporter) -> ExportRun:
    if cfg.quantization == "nf4":
        why = "no CUDA GPU" if not torch.cuda.is_available() else "bitsandbytes is not installed"
        raise ConfigError("quantization", f"nf4 (4-bit) needs bitsandbytes on a CUDA GPU, and this worker has {why}: "
                                          "choose int8, which runs anywhere")
    pick_device(cfg.device)  # refuses cuda where there is none; int8 quantises on the CPU either way
    tokenizer = load_base_tokenizer(cfg.base_model)
    model, info = load_base_model(cfg.base_model, dtype=torch.float32)
    context = min(cfg.context_length, info.context_length or cfg.context_length)
    windows = _windows(cfg, tokenizer, context) if cfg.eval_path else []
    reporter.status("running", total_steps=3, step=0, summary={
        "quantization": cfg.quantization, "parameters": info.parameters,
        "scored_tokens": sum(len(w) - 1 for w in windows)})
    return ExportRun(cfg, reporter, model.eval(), tokenizer, windows)


def _windows(cfg: ExportConfig, tokenizer: PreTrainedTokenizerBase, context: int) -> list[torch.Tensor]:
    """The first `eval_tokens` + 1 tokens of the corpus (documents joined by eos), in disjoint windows."""
    ids: list[int] = []
    for document in iter_documents(cfg.eval_path, cfg.eval_format):
        ids += tokenizer(document, add_special_tokens=False, verbose=False)["input_ids"] + [tokenizer.eos_token_id]
        if len(ids) > cfg.eval_tokens:
            break
    ids = ids[: cfg.eval_tokens + 1]
    if len(ids) < 2:
        raise ConfigError("eval_path", "holds too little text to score: it needs at least two tokens")
    # Each window predicts its tokens after the first; consecutive windows share one token so every
    # token but the very first is predicted once.
    return [torch.tensor(ids[start:start + context]) for start in range(0, len(ids) - 1, context - 1)
            if len(ids[start:start + context]) > 1]


@torch.no_grad()
def perplexity(model: nn.Module, windows: list[torch.Tensor]) -> float:
    """exp of the mean next-token loss over every scored token (weighted by tokens, not windows)."""
    total, count = 0.0, 0
    for window in windows:
        logits = model(input_ids=window[None, :-1], use_cache=False).logits[0]
        total += F.cross_entropy(logits.float(), window[1:], reduction="sum").item()
        count += len(window) - 1
    return math.exp(min(total / count, 50.0))


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def fit(state: ExportRun) -> Path | None:
    cfg, reporter = state.cfg, state.reporter
    base = Path(cfg.base_model)
    full_ppl = perplexity(state.model, state.windows) if state.windows else None
    reporter.metric(1, {"progress": 1 / 3} | ({"ppl_full": full_ppl} if full_ppl is not None else {}))
    if reporter.should_stop():
        return None
    out = Path(cfg.output_dir) / MODEL_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    modules = quantize_int8(state.model)
    _write_int8(state.model, state.tokenizer, modules, out)
    reporter.metric(2, {"progress": 2 / 3})
    if reporter.should_stop():
        return None
    reloaded = load_int8(out)  # what is scored is what was written
    quantized_ppl = perplexity(reloaded, state.windows) if state.windows else None
    full_bytes = sum(p.stat().st_size for p in base.rglob("*.safetensors") if p.is_file())
    quantized_bytes = (out / INT8_WEIGHTS).stat().st_size
    metadata = {
        "task": "export", "quantization": "int8", "format": INT8_METHOD, "source": str(base),
        "weights_bytes": {"full": full_bytes, "quantized": quantized_bytes},
        "perplexity": {"full": full_ppl, "quantized": quantized_ppl,
                       "tokens": sum(len(w) - 1 for w in state.windows)},
        "quantized_layers": len(modules),
    }
    reporter.metric(3, {"progress": 1.0, "weights_mb": quantized_bytes / 1e6}
                    | ({"ppl_int8": quantized_ppl} if quantized_ppl is not None else {}))
    reporter.artifact("export", str(out), metadata)
    return out


def _write_int8(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, modules: list[str], out: Path) -> None:
    """config.json naming the layout and the quantised layers, the weights, the tokenizer and the
    generation config: a folder that `load_int8` rebuilds with nothing but safetensors."""
    config = model.config.to_dict() | {"quantization_config": {
        "quant_method": INT8_METHOD, "bits": 8, "scheme": "symmetric, one scale per output row", "modules": modules,
        "weights": INT8_WEIGHTS, "loader": "training.export.load_int8"}}
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
    save_model(model, str(out / INT8_WEIGHTS), metadata={"format": "pt", "quantization": INT8_METHOD})
    tokenizer.save_pretrained(out)
    leftovers = not_safetensors(out)
    assert not leftovers, leftovers  # the folder is downloaded as is: no pickle may be in it
