"""training.datasets on the real sample files: kinds, exact row counts, canonical records, stats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.helpers import SAMPLE_DATA
from training.datasets import describe, detect_file_kind, iter_records, read_page, split_hh

HH = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl"
HH_SPLIT = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.prompt.jsonl"

# The pairs the reference split dropped (README): four whose dialogues differ before the last
# "\n\nAssistant:" (one reply holds a further "\n\nAssistant:" turn), three with an empty reply.
HH_UNSPLITTABLE = {
    104: "rejected",
    490: "rejected",
    955: "rejected",
    968: "rejected",
    891: "chosen",
    1240: "chosen",
    1414: "chosen",
}


def _jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.parametrize(
    ("path", "kind", "rows", "shape"),
    [
        ("corpora/tinyshakespeare.txt", "text", 7222, "text"),
        ("sft/dolly-2k.jsonl", "sft", 2000, "alpaca"),
        ("sft/dolly-2k.messages.jsonl", "sft", 2000, "messages"),
        ("preference/hh-harmless-test-1811.prompt.jsonl", "preference", 1804, "prompt"),
        ("classification/sms-spam-5k.tsv", "classification", 5000, "text_label"),
        ("eval/gsm8k-test-300.jsonl", "eval", 300, "generation"),
        ("eval/mmlu-test-500.jsonl", "eval", 500, "multiple_choice"),
    ],
)
def test_it_detects_the_kind_and_counts_every_row_of_the_samples(path, kind, rows, shape):
    d = describe(SAMPLE_DATA / path)
    assert d.errors == []
    assert (d.kind, d.rows, d.bytes) == (kind, rows, (SAMPLE_DATA / path).stat().st_size)
    assert d.breakdown["shapes"] == {shape: rows}
    assert d.chars["count"] == rows
    assert detect_file_kind(SAMPLE_DATA / path) == kind


def test_it_counts_the_same_documents_as_the_corpus_reader():
    from training.corpus import iter_documents

    corpus = SAMPLE_DATA / "corpora" / "tinyshakespeare.txt"
    expected = list(iter_documents(corpus, "txt"))
    assert [r["text"] for r in iter_records(corpus)] == expected
    assert describe(corpus).chars["total"] == sum(len(doc) for doc in expected)


def test_it_turns_alpaca_records_into_the_same_messages_as_the_messages_file():
    alpaca = list(iter_records(SAMPLE_DATA / "sft" / "dolly-2k.jsonl"))
    assert alpaca == _jsonl(SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl")


def test_it_counts_roles_and_turns_of_sft():
    d = describe(SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl")
    assert d.breakdown["roles"] == {"user": 2000, "assistant": 2000}
    assert d.breakdown["turns"] == {"2": 2000}


def test_it_splits_hh_rlhf_transcripts_exactly_as_the_reference_does():
    reference = iter(_jsonl(HH_SPLIT))
    d = describe(HH)
    for number, pair in enumerate(_jsonl(HH), start=1):
        if number in HH_UNSPLITTABLE:
            continue
        prompt, chosen, rejected = split_hh(pair["chosen"], pair["rejected"])
        assert {"prompt": prompt, "chosen": chosen, "rejected": rejected} == next(reference), number
    assert next(reference, None) is None
    assert (d.kind, d.rows) == ("preference", 1804)


def test_it_reports_each_hh_pair_the_reference_dropped_with_its_line_and_reason():
    d = describe(HH)
    assert {e.line: e.field for e in d.errors} == HH_UNSPLITTABLE
    by_line = {e.line: e for e in d.errors}
    assert str(by_line[891]) == (
        'hh-harmless-test-1811.jsonl, line 891, field "chosen": the final assistant reply is empty'
    )
    assert "differ from character 113" in str(by_line[104])
    assert not d.ok


def test_it_normalises_the_split_hh_records_to_the_reference_records():
    assert list(iter_records(HH_SPLIT)) == _jsonl(HH_SPLIT)


def test_it_counts_the_labels_of_the_spam_collection():
    d = describe(SAMPLE_DATA / "classification" / "sms-spam-5k.tsv")
    assert d.breakdown["labels"] == {"ham": 4336, "spam": 664}
    first = next(iter_records(SAMPLE_DATA / "classification" / "sms-spam-5k.tsv"))
    assert first["label"] == "spam" and first["text"].startswith("Not heard from U4 a while.")


def test_it_reads_messages_with_quotes_from_the_tsv_verbatim():
    # The file is TSV without quoting: a message that starts with '"' keeps it.
    path = SAMPLE_DATA / "classification" / "sms-spam-5k.tsv"
    with path.open(encoding="utf-8") as f:
        next(f)
        expected = [line.rstrip("\n").split("\t", 1) for line in f]
    assert [[r["label"], r["text"]] for r in iter_records(path)] == expected


def test_it_counts_the_gold_answers_of_mmlu():
    d = describe(SAMPLE_DATA / "eval" / "mmlu-test-500.jsonl")
    assert d.breakdown["answers"] == {"A": 113, "B": 120, "C": 126, "D": 141}
    assert d.breakdown["choices"] == {"4": 500}
    first = next(iter_records(SAMPLE_DATA / "eval" / "mmlu-test-500.jsonl"))
    assert set(first) == {"question", "choices", "answer"} and first["answer"] == 0


@pytest.mark.parametrize(
    "path",
    ["corpora/tinyshakespeare.txt", "sft/dolly-2k.jsonl", "classification/sms-spam-5k.tsv"],
)
def test_it_reads_the_same_page_with_and_without_the_page_index(path):
    every = list(iter_records(SAMPLE_DATA / path))
    d = describe(SAMPLE_DATA / path)
    assert [c.record for c in d.page_index] == list(range(0, d.rows, 1000))
    for offset in (0, 999, 1000, 1995, d.rows - 3):
        expected = every[offset : offset + 5]
        assert read_page(SAMPLE_DATA / path, offset, 5) == expected
        assert read_page(SAMPLE_DATA / path, offset, 5, index=d.page_index) == expected
    index = json.loads(json.dumps(d.to_dict()))["page_index"]  # as the web stores it
    assert read_page(SAMPLE_DATA / path, 1500, 2, index=index) == every[1500:1502]
