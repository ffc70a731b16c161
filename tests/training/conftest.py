"""Fixtures of the training tests: the sample corpus, one small tokenizer, its encoded corpus.

The models are tiny (the `tiny` preset at a 512-token vocabulary: 0.86M parameters) and run on CPU,
so the whole directory stays well under a minute and a half on two cores.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.training.helpers import CORPUS, FakeReporter
from training.config import TokenizerConfig


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny matmuls gain nothing from a second thread, and on a busy machine OpenMP threads that wait
    for each other make a step ten times slower. (`run_cli` sets OMP_NUM_THREADS=1 likewise.)"""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def corpus() -> Path:
    assert CORPUS.is_file(), f"sample corpus missing: {CORPUS} (run `make sample-data` or set LAB_SAMPLE_DATA)"
    return CORPUS


@pytest.fixture(scope="session")
def tokenizer_path(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-token byte-level BPE tokenizer trained once on tinyshakespeare."""
    from training.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(out), vocab_size=512)
    path = train_tokenizer(cfg, FakeReporter())
    assert path is not None
    return path


@pytest.fixture(scope="session")
def tokens_cache(corpus: Path, tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tinyshakespeare encoded once; `run_dir` copies it so each run skips the encoding (the sidecar's
    hashes still vouch for it, which exercises the reuse path)."""
    from training.data import prepare_tokens

    out = tmp_path_factory.mktemp("tokens")
    assert prepare_tokens(str(corpus), "txt", str(tokenizer_path), out, FakeReporter()) is not None
    return out


@pytest.fixture
def run_dir(tmp_path: Path, tokens_cache: Path) -> Path:
    """A fresh output folder holding the cached tokens.bin and tokens.json."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        shutil.copy(tokens_cache / name, out / name)
    return out


