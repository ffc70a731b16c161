"""The files of a model folder, each kept inside it: what a folder names (index shards, files a config
refers to) must be a path within the folder, and nothing in it may be a link.

A model folder comes from another team's upload or an admin's path; what it names is followed by
transformers when it loads. `Path(folder) / "/etc/passwd"` is `/etc/passwd`, and a link points
anywhere, so a name is judged by its text first (absolute, `..`, a drive) and by the real path only
then. Errors say which name broke the rule, never whether a path outside the folder exists nor any
byte of a file there: both would let an upload probe the server.

Pickled files (`pytorch_model.bin`, `optimizer.pt`, ...) run code when loaded: the lab loads weights
from safetensors only, drops pickles from models brought in and never serves one unasked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from training import json_limits
from training.config import ConfigError

# Weights and state in formats that can run code on load (pickle, and HDF5/msgpack weights the lab
# never reads): refused as a model's only weights, dropped beside safetensors, left out of downloads.
NOT_SAFETENSORS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.h5", "*.msgpack", "*.npy", "*.npz")
# Config keys that name a file (tokenizer_config.json's `tokenizer_file`, `vocab_file`, `merges_file`, ...).
_FILE_KEY = re.compile(r".*_files?$")


def inside(folder: Path, name: Any, named_by: str, field: str) -> Path:
    """`folder / name`, when `name` is a relative path within the folder and no part of it is a link."""
    if not isinstance(name, str) or not name:
        raise ConfigError(field, f"{named_by} names a file with {name!r}: a file name inside the folder is expected")
    parts = re.split(r"[\\/]", name)
    if name.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", name) or ".." in parts:
        raise ConfigError(field, f"{named_by} names {name!r}, which is not inside the model's folder: "
                                 "every file a model names must be in its folder")
    path = folder / PurePosixPath(*[p for p in parts if p not in ("", ".")])
    for part in _ancestors_within(folder, path):
        if part.is_symlink():
            raise ConfigError(field, f"{named_by} names {name!r}, which is a link: the lab refuses links in a model folder")
    return path


def refuse_links(folder: Path, field: str) -> None:
    """Nothing in the folder may be a link (a link's target is never followed, nor named)."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        for entry in dirs + files:
            path = Path(root, entry)
            if path.is_symlink():
                raise ConfigError(field, f"{path.relative_to(folder)} in {folder.name} is a link: the lab refuses "
                                         "links in a model folder (copy the file in instead)")


def check_named_files(folder: Path, config: dict[str, Any], named_by: str, field: str) -> None:
    """Every file a config names (keys ending in `_file`/`_files`, at any depth) lies inside the folder."""
    for key, value in _file_entries(config):
        for name in value if isinstance(value, list) else [value]:
            if name is not None:
                inside(folder, name, f"{named_by} ({key})", field)


def read_json_object(path: Path, field: str) -> dict[str, Any]:
    """A model folder's JSON file (config, index, tokenizer config), parsed with the depth limit."""
    if not path.is_file():
        raise ConfigError(field, f"{path.parent.name} has no {path.name}")
    try:
        data = json_limits.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(field, f"{path.parent.name}/{path.name} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(field, f"{path.parent.name}/{path.name} must hold a JSON object")
    return data


def not_safetensors(folder: Path) -> list[Path]:
    """The folder's files in a format that can run code on load, by name."""
    return sorted({path for pattern in NOT_SAFETENSORS for path in folder.rglob(pattern) if path.is_file()})


def _file_entries(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _FILE_KEY.fullmatch(key) and isinstance(item, (str, list)):
                yield key, item
            else:
                yield from _file_entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _file_entries(item)


def _ancestors_within(folder: Path, path: Path) -> Iterator[Path]:
    """`path` and each folder above it, up to (not including) `folder`."""
    while path != folder:
        yield path
        path = path.parent
