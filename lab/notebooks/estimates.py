"""What a pretrain cell will cost, shown before launch: parameters, tokens, FLOPs, Chinchilla budget."""

from lab import params
from lab.notebooks.cell_kinds import CELL_KINDS
from lab.notebooks.kinds import cell_output, upstream_cell
from lab.notebooks.models import Cell
from training import presets
from training.config import ConfigError
from training.pretrain_config import PretrainConfig

FIELDS = ("preset", "context_length", "batch_size", "grad_accum", "max_steps")


def _defaults() -> dict:
    return {name: PretrainConfig.__dataclass_fields__[name].default for name in FIELDS}


def tokenizer_vocab_size(cell: Cell) -> int | None:
    try:
        output = cell_output(upstream_cell(cell, "tokenizer_cell"))
    except ConfigError:
        return None
    return output.metadata.get("vocab_size") if output else None


def for_cell(cell: Cell, overrides: dict | None = None) -> dict:
    """The estimate for the cell's config with `overrides` (the form's current values, as text).
    ConfigError naming the field when a value is one the pretrain stage would refuse."""
    values = {**_defaults(), **{k: v for k, v in cell.config.items() if k in FIELDS}}
    for key, value in (overrides or {}).items():
        if key in FIELDS:
            values[key] = value if key == "preset" else params.integer(overrides, key, min_value=None, required=True)
    # The stage's own checks (bounds, the preset's positions); warmup is no part of the estimate.
    init_from = "/validate/base" if cell.config.get("model_cell") else None
    placeholders = CELL_KINDS[Cell.Kind.PRETRAIN].placeholder_paths
    PretrainConfig.from_dict({**values, **placeholders, "warmup_steps": 0, "init_from": init_from})
    vocab = tokenizer_vocab_size(cell)
    known_vocab = vocab is not None
    vocab = vocab or 4096
    n_params = presets.parameter_count(values["preset"], vocab)
    tokens_per_step = values["batch_size"] * values["grad_accum"] * values["context_length"]
    tokens = tokens_per_step * values["max_steps"]
    return {
        "preset": values["preset"],
        "vocab_size": vocab,
        "vocab_known": known_vocab,
        "params": n_params,
        "tokens_per_step": tokens_per_step,
        "tokens": tokens,
        "flops": presets.training_flops(n_params, tokens),
        "chinchilla_tokens": presets.chinchilla_tokens(n_params),
        "chinchilla_fraction": tokens / presets.chinchilla_tokens(n_params),
    }
