"""Loading a base model the safe way: a local folder, safetensors only, no remote code, no network.

Every stage that starts from a checkpoint (SFT, classification, generation, continued pretraining)
loads it through here, so the rules hold in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from training.config import ConfigError
from training.model_info import ModelInfo, check_model_folder, inspect_model

SAFE_LOADING = {"trust_remote_code": False, "local_files_only": True}


def load_base_tokenizer(path: str | Path, field: str = "base_model") -> PreTrainedTokenizerBase:
    """The folder's tokenizer, with a pad token (the eos token when it has none)."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(field, f"no model folder at {folder}")
    check_model_folder(folder, field)
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        raise ConfigError(field, f"{folder.name} has no tokenizer (tokenizer.json)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, **SAFE_LOADING)
    except (OSError, ValueError) as e:
        raise ConfigError(field, f"cannot load the tokenizer of {folder.name}: {e}") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(field, f"the tokenizer of {folder.name} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(path: str | Path, auto_class: Any = AutoModelForCausalLM, field: str = "base_model",
                    **kwargs: Any) -> tuple[PreTrainedModel, ModelInfo]:
    """The model in the folder `path` (checked by `inspect_model` first) and its facts.

    `auto_class` picks the head: `AutoModelForCausalLM`, `AutoModelForSequenceClassification`, ….
    `kwargs` go to `from_pretrained` (dtype, num_labels, …); the safety switches cannot be overridden.
    """
    info = inspect_model(path, field)
    try:
        model = auto_class.from_pretrained(Path(path), use_safetensors=True, **kwargs, **SAFE_LOADING)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(field, f"cannot load the model in {Path(path).name}: {e}") from None
    return model, info
