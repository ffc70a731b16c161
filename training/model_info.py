"""What a Hugging Face model folder holds, read without torch: the web shows it, stages check it.

A base model is a folder with `config.json`, safetensors weights (`model.safetensors`, or shards named
by `model.safetensors.index.json`) and a tokenizer (`tokenizer.json`, `tokenizer_config.json`). The
parameter count comes from the safetensors headers (an 8-byte length, then JSON), so nothing is loaded.
"""

from __future__ import annotations

import functools
import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from training import json_limits
from training.config import ConfigError
from training.model_files import check_named_files, inside, read_json_object, refuse_links
from training.tokenizer_files import read_tokenizer_config

SAFETENSORS_INDEX = "model.safetensors.index.json"
SINGLE_SAFETENSORS = "model.safetensors"
# The weights of other formats: their presence with no safetensors gets a precise refusal.
UNSAFE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Config sizes read as facts: whole numbers from 1 to 2**31 - 1 where present (a model asking for more
# could not be allocated; "lots" is no size).
SIZE_KEYS = ("max_position_embeddings", "n_positions", "vocab_size", "hidden_size", "n_embd", "num_hidden_layers",
             "n_layer", "num_attention_heads", "n_head", "intermediate_size")
MAX_SIZE = 2**31 - 1


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
    config = check_model_folder(folder, field)
    weights = weight_files(folder, field)
    parameters, dtypes = 0, set()
    for file in weights:
        count, file_dtypes = _safetensors_parameters(file, field)
        parameters += count
        dtypes |= file_dtypes
    architectures = config.get("architectures") or [config.get("model_type", "unknown")]
    tokenizer_config = read_tokenizer_config(folder, field)
    text_config = config.get("text_config") or config
    chat_template = tokenizer_config.get("chat_template")
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
        chat_template=(chat_template if isinstance(chat_template, str) else None) or _chat_template_file(folder),
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
    """The safetensors files of the folder, each inside it. Other weight formats are refused: they can
    run code on load."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file() or index.is_symlink():
        weight_map = read_json_object(inside(folder, SAFETENSORS_INDEX, folder.name, field), field).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ConfigError(field, f"{index.name}: weight_map must be an object of tensor name → shard file")
        shards = [inside(folder, name, index.name, field) for name in sorted(set(map(str, weight_map.values())))]
        missing = [str(shard.relative_to(folder)) for shard in shards if not shard.is_file()]
        if not shards or missing:
            raise ConfigError(field, f"{index.name} names shards that are not in the folder: {', '.join(missing) or 'none listed'}")
        return shards
    single = folder / SINGLE_SAFETENSORS
    if single.is_file() or single.is_symlink():
        return [inside(folder, SINGLE_SAFETENSORS, folder.name, field)]
    unsafe = [name for name in UNSAFE_WEIGHTS if (folder / name).exists()]
    if unsafe:
        raise ConfigError(field, f"{folder.name} holds {unsafe[0]}, not safetensors: the lab loads weights from safetensors only "
                                 "(convert it with `save_pretrained(..., safe_serialization=True)`)")
    raise ConfigError(field, f"{folder.name} holds no model.safetensors")


def check_model_folder(folder: Path, field: str = "base_model") -> dict[str, Any]:
    """The folder's config, once its files are known to stay inside it and to need no code of the
    model's own; a ConfigError says what breaks a rule. Workers check again before they load."""
    refuse_links(folder, field)
    config = read_json_object(folder / "config.json", field)
    _check_config(config, field)
    check_named_files(folder, config, "config.json", field)
    for name in ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "preprocessor_config.json"):
        if (folder / name).is_file():
            named = read_json_object(folder / name, field)
            _refuse_remote_code(named, name, field)
            check_named_files(folder, named, name, field)
    return config


def _check_config(config: dict[str, Any], field: str) -> None:
    _refuse_remote_code(config, "config.json", field)
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ConfigError(field, "config.json has no model_type: transformers cannot tell what model it is")
    known = known_model_types()
    if known is not None and model_type not in known:
        raise ConfigError(field, f"config.json: model_type {model_type[:80]!r} is not a model transformers knows; "
                                 "the lab never runs code shipped with a model (trust_remote_code stays off)")
    architectures = config.get("architectures")
    if architectures is not None and not (isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)):
        raise ConfigError(field, "config.json: architectures must be a list of class names")
    text_config = config.get("text_config")
    if text_config is not None and not isinstance(text_config, dict):
        raise ConfigError(field, "config.json: text_config must be an object")
    for where, values in (("", config), ("text_config.", text_config or {})):
        for key in SIZE_KEYS:
            value = values.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_SIZE):
                raise ConfigError(field, f"config.json: {where}{key} must be a whole number from 1 to {MAX_SIZE:,}, "
                                         f"not {json.dumps(value)[:40]}")


def _refuse_remote_code(config: dict[str, Any], name: str, field: str) -> None:
    if "auto_map" in config:
        raise ConfigError(field, f"{name} has an auto_map: the model needs code of its own, and the lab never runs "
                                 "code shipped with a model (trust_remote_code stays off)")


@functools.cache
def known_model_types() -> frozenset[str] | None:
    """The model types the installed transformers builds without remote code; None without transformers
    (the worker's loader refuses an unknown type then). Its table of names imports no torch."""
    try:
        from transformers.models.auto.auto_mappings import CONFIG_MAPPING_NAMES, SPECIAL_MODEL_TYPE_TO_MODULE_NAME
    except ImportError:
        return None
    return frozenset(CONFIG_MAPPING_NAMES) | frozenset(SPECIAL_MODEL_TYPE_TO_MODULE_NAME)


def tensor_shapes(file: Path, field: str = "base_model") -> dict[str, list[int]]:
    """Tensor name → shape, from a safetensors file's header."""
    return {name: tensor["shape"] for name, tensor in _safetensors_header(file, field).items()}


def _safetensors_parameters(file: Path, field: str) -> tuple[int, set[str]]:
    count, dtypes = 0, set()
    for tensor in _safetensors_header(file, field).values():
        n = 1
        for dim in tensor["shape"]:
            n *= dim
        count += n
        dtypes.add(tensor["dtype"])
    return count, dtypes


def _safetensors_header(file: Path, field: str) -> dict[str, Any]:
    """The tensors of the JSON header (an 8-byte little-endian length, then that many bytes of JSON),
    each checked to have a dtype, a shape of whole numbers and its data within the file."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ConfigError(field, f"{file.name} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", prefix)
        # The length is the file's own first bytes: it is judged, never shown.
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise ConfigError(field, f"{file.name} is not a safetensors file (its header length does not fit the file)")
        try:
            header = json_limits.loads(f.read(header_len))
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(field, f"{file.name} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ConfigError(field, f"{file.name} is not a safetensors file (its header is not an object)")
    data_bytes = size - 8 - header_len
    tensors = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        offsets = tensor.get("data_offsets") if isinstance(tensor, dict) else None
        if not (isinstance(tensor, dict) and isinstance(tensor.get("dtype"), str)
                and isinstance(shape, list) and all(_is_count(dim) for dim in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)
                and offsets[0] <= offsets[1] <= data_bytes):
            raise ConfigError(field, f"{file.name} is not a safetensors file: tensor {str(name)[:80]!r} needs a dtype, "
                                     "a shape (a list of whole numbers) and data_offsets within the file")
        tensors[name] = tensor
    return tensors


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**62


def _chat_template_file(folder: Path) -> str | None:
    template = folder / "chat_template.jinja"
    return template.read_text(encoding="utf-8") if template.is_file() else None
