"""Fixtures of the training tests (models and data they share with other tests: fixtures.py).

The models are tiny (the `tiny` preset at a 512-token vocabulary: 0.86M parameters) and run on CPU,
so the whole directory stays well under a minute and a half on two cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny matmuls gain nothing from a second thread, and on a busy machine OpenMP threads that wait
    for each other make a step ten times slower. (`run_cli` sets OMP_NUM_THREADS=1 likewise.)"""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def run_dir(tmp_path: Path, tokens_cache: Path) -> Path:
    """A fresh output folder holding the cached tokens.bin and tokens.json."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        shutil.copy(tokens_cache / name, out / name)
    return out


