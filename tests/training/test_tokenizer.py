"""The tokenizer stage on the sample corpus: a byte-level BPE that round-trips any text.
(Unigram, WordPiece and chat templates: test_tokenizer_algorithms.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer

from tests.training.helpers import FakeReporter, run_cli, write_config
from training.tokenizer import load_tokenizer, train_tokenizer
from training.tokenizer_config import TokenizerConfig


def test_it_trains_a_tokenizer_and_reports_the_artifact(corpus: Path, tmp_path: Path):
    reporter = FakeReporter()
    cfg = TokenizerConfig(corpus_path=str(corpus), output_dir=str(tmp_path), vocab_size=300, min_frequency=2)
    path = train_tokenizer(cfg, reporter)

    assert path == tmp_path / "tokenizer.json"
    assert [e["status"] for e in reporter.of_type("status")] == ["running", "succeeded"]
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "tokenizer" and artifact["path"] == str(path.resolve())
    meta = artifact["metadata"]
    assert meta["vocab_size"] == 300 and meta["special_tokens"] == ["<|endoftext|>", "<|pad|>"]
    assert meta["n_documents"] == 7222 and meta["bytes"] > 1_000_000
    # 256 bytes + 2 specials leave 42 merges: most words still take several tokens.
    assert meta["tokens"] > meta["words"] and 1.5 < meta["tokens_per_word"] < 6
    assert meta["algorithm"] == "byte-level-bpe" and meta["unk_token"] is None and meta["unk_rate"] == 0
    hf_config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert hf_config == {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>",
                         "eos_token": "<|endoftext|>", "pad_token": "<|pad|>"}


def test_it_round_trips_any_text(tokenizer_path: Path):
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    for text in ["ROMEO:\nBut, soft! what light through yonder window breaks?", "  two  spaces\ttab\r\n",
                 "naïve café, 東京, emoji 🙂, NUL \x00 byte"]:
        assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_it_learns_the_corpus_vocabulary(tokenizer_path: Path, corpus: Path):
    tokenizer, eos, pad = load_tokenizer(tokenizer_path)
    assert tokenizer.get_vocab_size() == 512
    assert (eos, pad) == ("<|endoftext|>", "<|pad|>")
    assert (tokenizer.token_to_id(eos), tokenizer.token_to_id(pad)) == (0, 1)
    text = corpus.read_text()[:4000]
    assert len(tokenizer.encode(text).ids) < len(text) / 1.7  # frequent words merged, not spelled in bytes
    assert tokenizer.encode("<|endoftext|>").ids == [0]  # special tokens are never split


def test_it_runs_from_the_cli(corpus: Path, tmp_path: Path):
    config = write_config(tmp_path / "tok.json", {
        "corpus_path": str(corpus), "output_dir": str(tmp_path / "tok"), "vocab_size": 260,
    })
    result = run_cli("tokenizer", "--config", str(config), "--seq-start", "3")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(3, 3 + len(events)))
    assert events[-1]["status"] == "succeeded"
    assert (tmp_path / "tok" / "tokenizer.json").is_file()


def test_it_exits_2_naming_the_field_for_a_corpus_that_is_not_utf8(tmp_path: Path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Hamlet\n\nOph\xe9lie\n".encode("latin-1"))
    config = write_config(tmp_path / "tok.json", {"corpus_path": str(bad), "output_dir": str(tmp_path / "tok")})
    result = run_cli("tokenizer", "--config", str(config))
    assert result.returncode == 2
    error = json.loads(result.stdout.splitlines()[-1])
    assert error["type"] == "error" and error["field"] == "corpus_path"
    assert "line 3" in error["message"] and "UTF-8" in error["message"]
    assert not (tmp_path / "tok" / "tokenizer.json").exists()


def test_it_exits_2_for_an_empty_corpus(tmp_path: Path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    config = write_config(tmp_path / "tok.json", {"corpus_path": str(empty), "output_dir": str(tmp_path / "tok")})
    result = run_cli("tokenizer", "--config", str(config))
    assert result.returncode == 2
    error = json.loads(result.stdout.splitlines()[-1])
    assert error["field"] == "corpus_path" and "holds no records" in error["message"]
