"""Streaming corpus readers: documents, and errors that point at the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.corpus import CorpusError, CorpusStats, iter_batches, iter_documents
from training.datasets import formats


def test_it_splits_text_on_blank_lines(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("First Citizen:\nSpeak.\n\n\nAll:\nSpeak, speak.\n   \n\r\nLast one.\n")
    assert list(iter_documents(path, "txt")) == ["First Citizen:\nSpeak.", "All:\nSpeak, speak.", "Last one."]


def test_it_reads_the_sample_corpus_as_speeches(corpus: Path):
    docs = iter_documents(corpus, "txt")
    assert next(docs) == "First Citizen:\nBefore we proceed any further, hear me speak."
    assert sum(1 for _ in docs) + 1 == 7222


def test_it_reads_jsonl_text_and_skips_blank_lines(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "one\n\ntwo", "id": 1}) + "\n\n" + json.dumps({"text": "three"}) + "\n")
    assert list(iter_documents(path, "jsonl")) == ["one\n\ntwo", "three"]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"text": "unterminated', "not valid JSON"),
        ('{"title": "no text"}', 'field "text": is missing'),
        ('{"text": 42}', 'field "text": must be a string, not a number'),
        ('["text"]', "each line must be a JSON object, not a list"),
    ],
)
def test_it_reports_the_line_of_a_bad_jsonl_record(tmp_path: Path, bad_line: str, reason: str):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "fine"}\n\n' + bad_line + "\n")
    with pytest.raises(CorpusError) as info:
        list(iter_documents(path, "jsonl"))
    assert info.value.line == 3
    assert info.value.field == "corpus_path"
    assert reason in info.value.message and "line 3" in info.value.message


def test_it_reports_the_line_of_bytes_that_are_not_utf8(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_bytes("ok\n\nstill fine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(CorpusError) as info:
        list(iter_documents(path, "txt"))
    assert info.value.line == 4 and "UTF-8" in info.value.message


@pytest.mark.parametrize("content, reason", [("", "the file is empty"), ("\n\n   \n", "holds no records")])
def test_it_rejects_an_empty_corpus(tmp_path: Path, content: str, reason: str):
    path = tmp_path / "c.txt"
    path.write_text(content)
    with pytest.raises(CorpusError) as info:
        list(iter_documents(path, "txt"))
    assert reason in info.value.message and info.value.field == "corpus_path"


def test_it_cuts_a_document_without_blank_lines_instead_of_holding_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(formats, "MAX_DOCUMENT_CHARS", 100)
    path = tmp_path / "c.txt"
    path.write_text("".join(f"line {i:03d} of a file with no blank lines\n" for i in range(30)))
    docs = list(iter_documents(path, "txt"))
    assert len(docs) > 5 and all(len(d) < 200 for d in docs)
    assert "\n".join(docs) == path.read_text().rstrip("\n")


def test_it_streams_rather_than_reading_the_whole_file(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "first"}) + "\nnot json at all\n")
    docs = iter_documents(path, "jsonl")
    assert next(docs) == "first"  # the bad second line is not read yet
    with pytest.raises(CorpusError):
        next(docs)


def _stats_one_by_one(documents: list[str]) -> tuple[dict[str, int], set[str]]:
    counts = {
        "n_documents": len(documents),
        "bytes": sum(len(d.encode("utf-8")) for d in documents),
        "words": sum(len(d.split()) for d in documents),
    }
    return counts, set("".join(documents))


def test_it_counts_corpus_statistics_per_batch_as_per_document(corpus: Path):
    documents = list(iter_documents(corpus, "txt"))
    stats = CorpusStats()
    for batch in iter_batches(iter(documents), batch_chars=100_000):
        stats.add(batch)
    assert (stats.counts(), stats.characters) == _stats_one_by_one(documents)
    assert stats.counts()["n_documents"] == 7222 and len(stats.characters) > 60


def test_it_counts_words_split_by_any_whitespace_and_non_ascii_characters():
    batches = [
        ["naïve café\u3000東京", "a\x1cb\x1dc", "tab\tand\x0bvertical"],
        ["no\xa0break space", "\u2028line separator\u2029"],
        ["plain ascii only", "   leading and trailing   "],
        ["emoji 🙂 x", "x"],
    ]
    stats = CorpusStats()
    for batch in batches:
        stats.add(batch)
    assert (stats.counts(), stats.characters) == _stats_one_by_one([d for b in batches for d in b])
