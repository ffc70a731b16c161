"""From a corpus to training batches, without ever holding the corpus in memory.

1. `prepare_tokens`: stream the documents, encode them in batches, append the end-of-text token
   after each, and write the ids to `tokens.bin` (uint16 or uint32) beside a `tokens.json` sidecar.
   A resume finds the sidecar's hashes unchanged and reuses the file.
2. `split_blocks`: cut the token stream into contiguous blocks of `context_length + 1` tokens
   (inputs plus next-token targets) and hold a seeded random share of them out for validation.
3. `BatchSampler`: walk the training blocks in a seeded shuffled order, one epoch after another; its
   `state()` is two integers, so a resume continues with exactly the next batch.
Blocks are read from an `np.memmap`, so only the rows of a batch ever leave the disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from training.config import ConfigError
from training.corpus import file_sha256, iter_batches, iter_documents
from training.events import Reporter
from training.tokenizer import load_tokenizer

TOKENS_FILE = "tokens.bin"
SIDECAR_FILE = "tokens.json"
SIDECAR_VERSION = 1


@dataclass
class TokenFile:
    """A finished `tokens.bin`: `count` token ids of `dtype`, documents ended by the eos token."""

    path: Path
    dtype: str
    count: int
    n_documents: int

    def memmap(self) -> np.memmap:
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.count,))


def token_dtype(vocab_size: int) -> str:
    """The smallest unsigned type for every id: uint16 halves the disk and page cache of uint32."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def prepare_tokens(
    corpus_path: str,
    corpus_format: str,
    tokenizer_path: str,
    output_dir: str | Path,
    reporter: Reporter,
) -> TokenFile | None:
    """Encode the corpus to `output_dir/tokens.bin`, or reuse it for the same corpus and tokenizer.

    Returns None when a stop was requested while encoding (nothing is left half-written).
    """
    tokenizer, eos, _ = load_tokenizer(tokenizer_path)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    bin_path, sidecar_path = out / TOKENS_FILE, out / SIDECAR_FILE
    wanted = {
        "version": SIDECAR_VERSION,
        "dtype": token_dtype(tokenizer.get_vocab_size()),
        "corpus_sha256": file_sha256(corpus_path),
        "corpus_format": corpus_format,
        "tokenizer_sha256": file_sha256(tokenizer_path),
    }
    existing = _read_sidecar(sidecar_path)
    if existing and all(existing.get(k) == v for k, v in wanted.items()):
        itemsize = np.dtype(wanted["dtype"]).itemsize
        if bin_path.is_file() and bin_path.stat().st_size == existing["count"] * itemsize:
            reporter.log(f"reusing {bin_path} ({existing['count']} tokens)")
            return TokenFile(bin_path, wanted["dtype"], existing["count"], existing["n_documents"])

    reporter.log(f"tokenizing {corpus_path}")
    token_file = _encode_corpus(
        tokenizer, tokenizer.token_to_id(eos), corpus_path, corpus_format, bin_path,
        wanted["dtype"], reporter,
    )
    if token_file is None:
        return None
    sidecar = {
        **wanted,
        "vocab_size": tokenizer.get_vocab_size(),
        "count": token_file.count,
        "n_documents": token_file.n_documents,
    }
    tmp = sidecar_path.with_name(f".{SIDECAR_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(sidecar, indent=2))
    os.replace(tmp, sidecar_path)  # written last, the sidecar vouches for a complete tokens.bin
    reporter.log(f"tokenized {token_file.n_documents} documents into {token_file.count} tokens")
    return token_file


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _encode_corpus(
    tokenizer: Tokenizer,
    eos_id: int,
    corpus_path: str,
    corpus_format: str,
    bin_path: Path,
    dtype: str,
    reporter: Reporter,
) -> TokenFile | None:
    tmp = bin_path.with_name(f".{TOKENS_FILE}.tmp-{os.getpid()}")
    count = n_documents = 0
    try:
        with tmp.open("wb") as f:
            for batch in iter_batches(iter_documents(corpus_path, corpus_format)):
                if reporter.should_stop():
                    tmp.unlink()
                    return None
                for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
                    ids = np.array(encoding.ids + [eos_id], dtype=dtype)
                    ids.tofile(f)
                    count += len(ids)
                n_documents += len(batch)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, bin_path)
    return TokenFile(bin_path, dtype, count, n_documents)


@dataclass
class Split:
    """Block indices (a block is `block_len` consecutive tokens) for training and validation."""

    block_len: int
    train: np.ndarray
    val: np.ndarray


def split_blocks(n_tokens: int, context_length: int, val_fraction: float, seed: int) -> Split:
    """Hold out round(n_blocks * val_fraction) blocks, at least one, by a permutation seeded `seed`.

    Whole blocks, not documents, are held out: the split is exact in tokens and costs nothing to
    compute, at the price of a validation block sometimes sharing a document with a training block.
    """
    block_len = context_length + 1
    n_blocks = n_tokens // block_len
    if n_blocks < 2:
        raise ConfigError(
            "corpus_path",
            f"the corpus has {n_tokens} tokens: too few for one training and one validation block "
            f"of context_length + 1 = {block_len} tokens",
        )
    n_val = min(max(1, round(n_blocks * val_fraction)), n_blocks - 1)
    order = np.random.default_rng(seed).permutation(n_blocks)
    return Split(block_len, train=np.sort(order[n_val:]), val=np.sort(order[:n_val]))


class TokenBlocks:
    """The token file seen as rows of `block_len` tokens; reading a row touches only its pages."""

    def __init__(self, token_file: TokenFile, block_len: int) -> None:
        self.block_len = block_len
        self.n_blocks = token_file.count // block_len
        tokens = token_file.memmap()
        self._rows = tokens[: self.n_blocks * block_len].reshape(self.n_blocks, block_len)

    def read(self, indices: np.ndarray) -> np.ndarray:
        """The rows `indices` as an int64 array of shape (len(indices), block_len)."""
        return np.asarray(self._rows[indices], dtype=np.int64)


def val_batch_indices(val: np.ndarray, batch_size: int, n_batches: int) -> list[np.ndarray]:
    """The fixed validation batches: the first `batch_size * n_batches` val blocks, or all."""
    chosen = val[: batch_size * n_batches]
    return [chosen[i : i + batch_size] for i in range(0, len(chosen), batch_size)]


class BatchSampler:
    """Batches of training block indices: a seeded shuffle per epoch, the remainder dropped."""

    def __init__(self, train_blocks: np.ndarray, batch_size: int, seed: int) -> None:
        if batch_size > len(train_blocks):
            n = len(train_blocks)
            raise ConfigError(
                "batch_size", f"{batch_size} is larger than the {n} training blocks of this corpus"
            )
        self.blocks = train_blocks
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._order_for(0)

    def _order_for(self, epoch: int) -> np.ndarray:
        # Seeded by (seed, epoch), so the order of any epoch is rebuilt from two integers on resume.
        rng = np.random.default_rng([self.seed, epoch])
        return self.blocks[rng.permutation(len(self.blocks))]

    def next_indices(self) -> np.ndarray:
        if self.position + self.batch_size > len(self._order):
            self.epoch += 1
            self.position = 0
            self._order = self._order_for(self.epoch)
        indices = self._order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return indices

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._order_for(self.epoch)
