"""What a `tokenizer_config.json` declares beside its `tokenizer.json`: the special tokens by role
(`eos_token`, ...) and the chat template. Torch-free: the web reads it too. Parsed with the depth
limit; a value that is not a token is left out, as transformers would fail on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training import json_limits
from training.config import ConfigError

TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")


def read_tokenizer_config(folder: Path, field: str = "tokenizer_path") -> dict[str, Any]:
    """The folder's tokenizer_config.json as an object; {} without one."""
    path = Path(folder) / TOKENIZER_CONFIG
    if not path.is_file():
        return {}
    try:
        config = json_limits.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(field, f"{TOKENIZER_CONFIG} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(field, f"{TOKENIZER_CONFIG} must hold a JSON object")
    return config


def declared_special_tokens(config: dict[str, Any]) -> dict[str, str]:
    """`bos_token`, `eos_token`, ... as strings; transformers also saves them as `{"content": ...}`."""
    tokens = {}
    for key in SPECIAL_TOKEN_KEYS:
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str) and value:
            tokens[key] = value
    return tokens
