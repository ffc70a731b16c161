"""A stage's dataset input: a file of a given format and kind, read through `training.datasets`,
with every problem reported as a ConfigError on the config field the user has to change. No torch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.config import ConfigError
from training.corpus import reader_name
from training.datasets import DatasetError, detect_file_kind, iter_records
from training.datasets.formats import FORMAT_NAMES

DATASET_FORMATS = FORMAT_NAMES


def check_format(field_name: str, fmt: str) -> None:
    if fmt not in DATASET_FORMATS:
        raise ConfigError(field_name, f"must be one of {', '.join(DATASET_FORMATS)}, not {fmt!r}")


def require_dataset_file(path_field: str, path: str) -> Path:
    if not path:
        raise ConfigError(path_field, "must not be empty")
    p = Path(path)
    if not p.is_file():
        raise ConfigError(path_field, f"no such file: {path}")
    return p


def file_kind(path: str | Path, fmt: str, field_name: str) -> str:
    """The kind of the dataset file (from its first readable record)."""
    try:
        return detect_file_kind(path, name=reader_name(path, fmt))
    except DatasetError as e:
        raise ConfigError(field_name, str(e)) from None


def require_kind(path: str | Path, fmt: str, kind: str, stage: str, field_name: str = "dataset") -> None:
    """A ConfigError on `field_name` naming the kind found unless the file is of `kind`."""
    found = file_kind(path, fmt, field_name)
    if found != kind:
        raise ConfigError(
            field_name,
            f"{Path(path).name} is a {found} dataset; the {stage} stage needs a {kind} dataset",
        )


def read_records(path: str | Path, fmt: str, kind: str, field_name: str = "dataset") -> Iterator[dict[str, Any]]:
    """The file's canonical records (see training/datasets/kinds.py); the first bad record is a
    ConfigError on `field_name` whose message names the file, line and field."""
    try:
        yield from iter_records(path, kind, name=reader_name(path, fmt))
    except DatasetError as e:
        raise ConfigError(field_name, str(e)) from None
