"""From corpus to batches: the token file, the train/val split and a sampler that resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.helpers import FakeReporter
from training.config import ConfigError
from training.data import BatchSampler, TokenBlocks, prepare_tokens, split_blocks, val_batch_indices
from training.tokenizer import load_tokenizer


def test_it_writes_the_corpus_as_uint16_tokens_with_eos_after_each_document(tmp_path: Path, tokenizer_path: Path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("To be, or not to be.\n\nThat is the question.\n")
    token_file = prepare_tokens(str(corpus), "txt", str(tokenizer_path), tmp_path / "run", FakeReporter())
    tokenizer, _, _ = load_tokenizer(tokenizer_path)

    tokens = token_file.memmap()
    assert token_file.dtype == "uint16" and token_file.n_documents == 2
    expected = tokenizer.encode("To be, or not to be.").ids + [0] + tokenizer.encode("That is the question.").ids + [0]
    assert tokens.tolist() == expected
    sidecar = json.loads((tmp_path / "run" / "tokens.json").read_text())
    assert sidecar["count"] == len(expected) and sidecar["dtype"] == "uint16"
    assert len(sidecar["corpus_sha256"]) == len(sidecar["tokenizer_sha256"]) == 64


def test_it_reuses_the_token_file_until_the_corpus_changes(tmp_path: Path, tokenizer_path: Path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("One document.\n")
    prepare_tokens(str(corpus), "txt", str(tokenizer_path), tmp_path, FakeReporter())
    reporter = FakeReporter()
    prepare_tokens(str(corpus), "txt", str(tokenizer_path), tmp_path, reporter)
    assert "reusing" in reporter.of_type("log")[0]["message"]

    corpus.write_text("One document.\n\nAnd another one.\n")
    reporter = FakeReporter()
    token_file = prepare_tokens(str(corpus), "txt", str(tokenizer_path), tmp_path, reporter)
    assert "tokenizing" in reporter.of_type("log")[0]["message"] and token_file.n_documents == 2


def test_it_splits_blocks_deterministically_and_disjointly():
    split = split_blocks(n_tokens=65 * 100 + 30, context_length=64, val_fraction=0.1, seed=7)
    assert split.block_len == 65
    assert len(split.val) == 10 and len(split.train) == 90
    assert sorted(set(split.train) | set(split.val)) == list(range(100))
    again = split_blocks(n_tokens=65 * 100 + 30, context_length=64, val_fraction=0.1, seed=7)
    assert np.array_equal(again.val, split.val)
    other = split_blocks(n_tokens=65 * 100 + 30, context_length=64, val_fraction=0.1, seed=8)
    assert not np.array_equal(other.val, split.val)


def test_it_refuses_a_corpus_too_small_for_a_train_and_a_val_block():
    with pytest.raises(ConfigError) as info:
        split_blocks(n_tokens=100, context_length=64, val_fraction=0.1, seed=0)
    assert info.value.field == "corpus_path" and "100 tokens" in info.value.message


def test_it_refuses_a_batch_larger_than_the_training_blocks():
    with pytest.raises(ConfigError) as info:
        BatchSampler(np.arange(5), batch_size=8, seed=0)
    assert info.value.field == "batch_size"
    assert info.value.message == "8 is larger than the 5 training blocks of this corpus"


def test_it_resumes_the_batch_order_exactly():
    blocks = np.arange(0, 50, 2)  # 25 training blocks: an epoch is 6 batches of 4, one block dropped
    straight = BatchSampler(blocks, batch_size=4, seed=3)
    expected = [straight.next_indices().tolist() for _ in range(20)]

    first = BatchSampler(blocks, batch_size=4, seed=3)
    got = [first.next_indices().tolist() for _ in range(9)]
    state = json.loads(json.dumps(first.state()))  # it travels through trainer_state.json
    second = BatchSampler(blocks, batch_size=4, seed=3)
    second.load_state(state)
    got += [second.next_indices().tolist() for _ in range(11)]

    assert got == expected
    assert state == {"epoch": 1, "position": 12}
    epoch0 = sum(expected[:6], [])
    assert len(set(epoch0)) == 24 and set(epoch0) <= set(blocks.tolist())
    assert expected[:6] != expected[6:12]  # each epoch is shuffled anew


def test_it_reads_blocks_of_inputs_and_targets(tokens_cache: Path):
    from training.data import TokenFile

    meta = json.loads((tokens_cache / "tokens.json").read_text())
    token_file = TokenFile(tokens_cache / "tokens.bin", meta["dtype"], meta["count"], meta["n_documents"])
    split = split_blocks(token_file.count, context_length=32, val_fraction=0.05, seed=1)
    blocks = TokenBlocks(token_file, split.block_len)
    batch = blocks.read(split.train[[0, 5]])
    assert batch.shape == (2, 33) and batch.dtype == np.int64
    tokens = token_file.memmap()
    start = split.train[5] * 33
    assert batch[1].tolist() == tokens[start : start + 33].tolist()
    val = val_batch_indices(split.val, batch_size=4, n_batches=3)
    assert [len(b) for b in val] == [4, 4, 4] and set(np.concatenate(val)) <= set(split.val)
