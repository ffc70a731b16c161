"""Which modules of a model folder LoRA can adapt, read from the safetensors headers. No torch.

A linear layer shows in the headers as a two-dimensional `<module path>.weight`. Embeddings and the
output head are two-dimensional too; they are told apart by their vocabulary-sized dimension and
left out (peft's `all-linear` leaves the output head out as well, and trl refuses an adapter on it).
"""

from __future__ import annotations

from pathlib import Path

from training.config import ConfigError
from training.model_info import check_model_folder, tensor_shapes, weight_files

ALL_LINEAR = "all-linear"


def linear_module_paths(folder: str | Path, field: str = "base_model") -> list[str]:
    """Dotted paths (`model.layers.0.self_attn.q_proj`) of the folder's linear layers."""
    folder = Path(folder)
    config = check_model_folder(folder, field)
    vocab_size = (config.get("text_config") or config).get("vocab_size")
    paths = []
    for file in weight_files(folder, field):
        for name, shape in tensor_shapes(file, field).items():
            if name.endswith(".weight") and len(shape) == 2 and vocab_size not in shape:
                paths.append(name.removesuffix(".weight"))
    return sorted(paths)


def check_target_modules(folder: str | Path, targets: list[str]) -> None:
    """Each target must name linear layers: a layer's name (`q_proj`) or the end of its path
    (`self_attn.q_proj`); or the list is just `all-linear`."""
    if not targets:
        raise ConfigError("lora_target_modules", f"must name at least one module, or {ALL_LINEAR}")
    if ALL_LINEAR in targets:
        if targets != [ALL_LINEAR]:
            raise ConfigError("lora_target_modules", f"{ALL_LINEAR} already names every linear layer: "
                                                     "give it alone")
        return
    paths = linear_module_paths(folder)
    names = sorted({p.rsplit(".", 1)[-1] for p in paths})
    for target in targets:
        if not any(p == target or p.endswith("." + target) for p in paths):
            raise ConfigError(
                "lora_target_modules",
                f"{target!r} is not a linear layer of the model in {Path(folder).name} "
                f"(its linear layers: {', '.join(names)}; or {ALL_LINEAR})",
            )

