"""What a Hugging Face model folder holds, read without torch: the web shows it, stages check it.

A base model is a folder with `config.json`, safetensors weights (`model.safetensors`, or shards named
by `model.safetensors.index.json`) and a tokenizer (`tokenizer.json`, `tokenizer_config.json`). The
parameter count comes from the safetensors headers (an 8-byte length, then JSON), so nothing is loaded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training.config import ConfigError

SAFETENSORS_INDEX = "model.safetensors.index.json"
SINGLE_SAFETENSORS = "model.safetensors"
# The weights of other formats: their presence with no safetensors gets a precise refusal.
UNSAFE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    model_type: str
    parameters: int
    context_length: int | None
    vocab_size: int | None
    hidden_size: int | None
    layers: int | None
    dtype: str | None
    has_tokenizer: bool
    chat_template: str | None
    weight_files: tuple[str, ...]
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"weight_files": list(self.weight_files)}


def inspect_model(path: str | Path, field: str = "base_model") -> ModelInfo:
    """The facts of the model folder at `path`; a ConfigError on `field` says what is wrong with it."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(field, f"no model folder at {folder}")
    config = _read_json(folder / "config.json", field)
    weights = weight_files(folder, field)
    parameters, dtypes = 0, set()
    for file in weights:
        count, file_dtypes = _safetensors_parameters(file, field)
        parameters += count
        dtypes |= file_dtypes
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    tokenizer_config = _read_json(folder / "tokenizer_config.json", field) if (folder / "tokenizer_config.json").is_file() else {}
    text_config = config.get("text_config") or config
    return ModelInfo(
        architecture=str(architectures[0]),
        model_type=str(config.get("model_type", "unknown")),
        parameters=parameters,
        context_length=text_config.get("max_position_embeddings") or text_config.get("n_positions"),
        vocab_size=text_config.get("vocab_size"),
        hidden_size=text_config.get("hidden_size") or text_config.get("n_embd"),
        layers=text_config.get("num_hidden_layers") or text_config.get("n_layer"),
        dtype=config.get("torch_dtype") or config.get("dtype") or (sorted(dtypes)[0] if len(dtypes) == 1 else None),
        has_tokenizer=(folder / "tokenizer.json").is_file(),
        chat_template=tokenizer_config.get("chat_template") or _chat_template_file(folder),
        weight_files=tuple(f.name for f in weights),
        size_bytes=sum(f.stat().st_size for f in weights),
    )


def inspect_model_for_length(path: str | Path, max_length: int, field: str = "base_model") -> ModelInfo:
    """`inspect_model`, and a ConfigError on `max_length` when the model serves fewer positions."""
    info = inspect_model(path, field)
    if info.context_length is not None and max_length > info.context_length:
        raise ConfigError("max_length", f"{max_length} is longer than the {info.context_length} positions "
                                        f"the model in {Path(path).name} can serve")
    return info


def weight_files(folder: Path, field: str = "base_model") -> list[Path]:
    """The safetensors files of the folder. Other weight formats are refused: they can run code on load."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        shards = sorted(set(_read_json(index, field).get("weight_map", {}).values()))
        missing = [name for name in shards if not (folder / name).is_file()]
        if not shards or missing:
            raise ConfigError(field, f"{index.name} names shards that are not in the folder: {', '.join(missing) or 'none listed'}")
        return [folder / name for name in shards]
    if (folder / SINGLE_SAFETENSORS).is_file():
        return [folder / SINGLE_SAFETENSORS]
    unsafe = [name for name in UNSAFE_WEIGHTS if (folder / name).exists()]
    if unsafe:
        raise ConfigError(field, f"{folder.name} holds {unsafe[0]}, not safetensors: the lab loads weights from safetensors only "
                                 "(convert it with `save_pretrained(..., safe_serialization=True)`)")
    raise ConfigError(field, f"{folder.name} holds no model.safetensors")


def tensor_shapes(file: Path, field: str = "base_model") -> dict[str, list[int]]:
    """Tensor name → shape, from a safetensors file's header."""
    return {name: tensor["shape"] for name, tensor in _safetensors_header(file, field).items() if name != "__metadata__"}


def _safetensors_parameters(file: Path, field: str) -> tuple[int, set[str]]:
    count, dtypes = 0, set()
    for name, tensor in _safetensors_header(file, field).items():
        if name == "__metadata__":
            continue
        n = 1
        for dim in tensor["shape"]:
            n *= dim
        count += n
        dtypes.add(tensor["dtype"])
    return count, dtypes


def _safetensors_header(file: Path, field: str) -> dict[str, Any]:
    """The JSON header: an 8-byte little-endian length, then that many bytes of JSON."""
    with open(file, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ConfigError(field, f"{file.name} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES:
            raise ConfigError(field, f"{file.name} is not a safetensors file (header of {header_len} bytes)")
        try:
            header = json.loads(f.read(header_len))
        except ValueError:
            raise ConfigError(field, f"{file.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ConfigError(field, f"{file.name} is not a safetensors file (its header is not an object)")
    return header


def _chat_template_file(folder: Path) -> str | None:
    template = folder / "chat_template.jinja"
    return template.read_text(encoding="utf-8") if template.is_file() else None


def _read_json(path: Path, field: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(field, f"{path.parent.name} has no {path.name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(field, f"{path.parent.name}/{path.name} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{path.parent.name}/{path.name} must hold a JSON object")
    return data
