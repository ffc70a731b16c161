"""What a `tokenizer_config.json` declares beside its `tokenizer.json`: the special tokens by role
(`eos_token`, ...) and the chat template. Torch-free: the web reads it too. Parsed with the depth
limit; a value that is not a token is left out, as transformers would fail on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.model_files import read_json_object

TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


def read_tokenizer_config(folder: Path, field: str = "tokenizer_path") -> dict[str, Any]:
    """The folder's tokenizer_config.json as an object; {} without one."""
    path = Path(folder) / TOKENIZER_CONFIG
    return read_json_object(path, field) if path.is_file() else {}


def declared_special_tokens(config: dict[str, Any]) -> dict[str, str]:
    """`bos_token`, `eos_token`, ... as strings; transformers also saves them as `{"content": ...}`."""
    tokens = {}
    for key in SPECIAL_TOKEN_KEYS:
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str) and value:
            tokens[key] = value
    return tokens
