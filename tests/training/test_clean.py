"""The clean stage: each rule removes exactly what it should, the split is seeded, nothing partial
is left behind, and the numbers of the report add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.training.helpers import FakeReporter, parse_events, run_cli, write_config
from training.clean import clean_corpus
from training.clean_config import CleanConfig
from training.clean_rules import alpha_ratio, scrub_phones
from training.config import ConfigError
from training.corpus import iter_documents

GOOD = [
    "The quick brown fox jumps over the lazy dog while the farmer sleeps in the barn.",
    "A journey of a thousand miles begins with a single step, or so the proverb says.",
    "Rain in the mountains feeds the rivers that water the valleys far below them.",
]


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def read_texts(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: JSON may hold U+2028
    return [json.loads(line)["text"] for line in lines if line]


def clean(tmp_path: Path, texts: list[str], **overrides: Any) -> tuple[dict[str, Any], list[str]]:
    """Clean `texts` (as JSON lines, no validation split); (report, kept texts in order)."""
    tmp_path.mkdir(exist_ok=True)
    corpus = write_jsonl(tmp_path / "in.jsonl", texts)
    out = tmp_path / "out"
    cfg = CleanConfig(input_path=str(corpus), input_format="jsonl", output_dir=str(out),
                      val_fraction=0.0, **overrides)
    report_path = clean_corpus(cfg, FakeReporter())
    assert report_path == out / "report.json"
    assert read_texts(out / "validation.jsonl") == []
    return json.loads(report_path.read_text()), read_texts(out / "train.jsonl")


def long_paragraphs(corpus: Path, n: int) -> list[str]:
    """`n` distinct paragraphs of the sample corpus with 90 to 130 words."""
    return [d for d in iter_documents(corpus, "txt") if 90 <= len(d.split()) <= 130][:n]


def test_it_cleans_the_sample_corpus_and_the_report_adds_up(corpus: Path, tmp_path: Path):
    reporter = FakeReporter()
    out = tmp_path / "out"
    report_path = clean_corpus(CleanConfig(input_path=str(corpus), output_dir=str(out)), reporter)

    assert [e["status"] for e in reporter.of_type("status")] == ["running", "succeeded"]
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "corpus" and artifact["path"] == str((out / "train.jsonl").resolve())
    report = artifact["metadata"]
    assert json.loads(report_path.read_text()) == report
    assert report["documents_in"] == 7222
    assert report["documents_kept"] + sum(report["removed"].values()) == report["documents_in"]
    train, validation = read_texts(out / "train.jsonl"), read_texts(out / "validation.jsonl")
    assert report["split"] == {"train": len(train), "validation": len(validation)}
    assert len(train) + len(validation) == report["documents_kept"]
    assert 0.03 < len(validation) / report["documents_kept"] < 0.07
    bytes_out = sum(len(t.encode()) for t in train + validation)
    assert report["bytes_out"] == bytes_out < report["bytes_in"]
    # Speaker names alone ("TITUS:") are the short ones; the play repeats a few lines verbatim.
    assert report["removed"]["too_short"] > 100 and report["removed"]["exact_duplicate"] > 0
    for rule, examples in report["examples"].items():
        assert len(examples) == min(report["removed"][rule], 5)
    assert all(len(e) < 20 for e in report["examples"]["too_short"])
    assert sorted(p.name for p in out.iterdir()) == [
        "report.json", "train.jsonl", "validation.jsonl"
    ]
    assert reporter.of_type("metric")[-1]["values"]["progress"] == 1.0


def test_it_normalises_to_nfc_and_strips_control_characters(tmp_path: Path):
    composed = "The caf\u00e9 on the corner serves\tstrong coffee\nall day long."
    decomposed = "The cafe\u0301 on the corner serves\tstrong coffee\nall day long."
    noisy = "Bells\x00 ring\x1b over the\x7f quiet town\x85 at dawn."
    report, kept = clean(tmp_path, [composed, decomposed, noisy])

    assert report["removed"]["exact_duplicate"] == 1
    assert kept == [composed, "Bells ring over the quiet town at dawn."]


def test_it_refuses_a_lone_surrogate_that_utf8_cannot_hold_naming_its_line(tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        clean(tmp_path, ["A fine first line of text.", "A lone \ud800surrogate came in through an escaped JSON string."])
    assert e.value.field == "input_path" and "in.jsonl, line 2: not valid JSON (a string holds a lone surrogate" in e.value.message


def test_it_keeps_the_text_as_it_is_when_normalising_is_off(tmp_path: Path):
    composed = "The caf\u00e9 on the corner serves strong coffee all day long."
    decomposed = "The cafe\u0301 on the corner serves strong coffee all day long."
    _, kept = clean(tmp_path, [composed, decomposed], normalize=False, near_dedup=False)
    assert kept == [composed, decomposed]


def test_it_scrubs_emails_and_phone_numbers_but_keeps_ordinary_numbers(tmp_path: Path):
    numbers = "The quarto was printed in 1603; pi is about 3.14; the letter came on 2023-01-15."
    text = f"Write to jane.doe@example.org or call +44 20 7946 0958 or (555) 123-4567. {numbers}"
    report, kept = clean(tmp_path, [text], scrub_emails=True, scrub_phones=True)

    assert kept == [f"Write to <EMAIL> or call <PHONE> or <PHONE>. {numbers}"]
    assert report["replaced"] == {"email": 1, "phone": 2}


def test_it_leaves_emails_and_phones_alone_by_default(tmp_path: Path):
    text = "Write to jane.doe@example.org or call +44 20 7946 0958 for the tickets to the play."
    _, kept = clean(tmp_path, [text])
    assert kept == [text]


@pytest.mark.parametrize("text, scrubbed", [
    ("+1 (555) 123-4567", "<PHONE>"),
    ("555.123.4567", "<PHONE>"),
    ("ring 020 7946 0958", "ring <PHONE>"),
    ("+4915112345678.", "<PHONE>."),
    ("in 1603 and 1604 and 1605", "in 1603 and 1604 and 1605"),
    ("3.14159 and 2.71828", "3.14159 and 2.71828"),
    ("ISBN 978-0-306-40615-7", "ISBN 978-0-306-40615-7"),
    ("1,000,000 ducats", "1,000,000 ducats"),
    ("card 4111 1111 1111 1111", "card 4111 1111 1111 1111"),
    ("2+2=4, +10 points", "2+2=4, +10 points"),
])
def test_it_tells_phone_numbers_from_other_numbers(text: str, scrubbed: str):
    assert scrub_phones(text)[0] == scrubbed


def test_it_measures_letters_alike_in_ascii_and_other_text():
    assert alpha_ratio("abc 123") == alpha_ratio("äbç 123") == 0.5
    assert alpha_ratio(" \n ") == 0.0


def test_it_removes_exactly_the_documents_each_quality_filter_catches(tmp_path: Path):
    bad = {
        "too_short": "Too short.",
        "too_long": "A line that goes on and on. " * 10,
        "low_alpha_ratio": "Totals: 1234 5678 9012 3456 7890 1111 2222 3333 4444 5555 6666",
        "repeated_lines": "Buy now!\nBuy now!\nBuy now!\nBuy now!\nThe offer ends on Sunday.",
    }
    report, kept = clean(tmp_path, [GOOD[0], *bad.values(), GOOD[1], GOOD[2]], max_chars=200)

    assert kept == GOOD
    for rule, text in bad.items():
        assert report["removed"][rule] == 1, rule
        assert report["examples"][rule] == [text]
    assert report["removed"]["exact_duplicate"] == report["removed"]["near_duplicate"] == 0


def test_it_turns_the_quality_filters_off(tmp_path: Path):
    texts = [GOOD[0], "Totals: 1234 5678 9012 3456 7890", "Buy now!\nBuy now!\nBuy now!"]
    _, kept = clean(tmp_path, texts, min_chars=1, min_alpha_ratio=0.0, max_repeated_line_ratio=1.0)
    assert kept == texts


def test_it_removes_exact_duplicates_keeping_the_first(tmp_path: Path):
    report, kept = clean(tmp_path, [GOOD[0], GOOD[1], GOOD[0], GOOD[2], GOOD[0]])
    assert kept == GOOD
    assert report["removed"]["exact_duplicate"] == 2 and report["documents_kept"] == 3


def test_it_removes_near_duplicates_and_keeps_distinct_documents(corpus: Path, tmp_path: Path):
    first, second, third = long_paragraphs(corpus, 3)
    words = first.split(" ")
    words[len(words) // 2] = "elephant"
    variant = " ".join(words)
    report, kept = clean(tmp_path, [first, second, variant, third])

    assert kept == [first, second, third]
    assert report["removed"]["near_duplicate"] == 1
    assert report["examples"]["near_duplicate"] == [variant[:300] + "…"]  # examples are cut at 300
    assert report["removed"]["exact_duplicate"] == 0


def test_it_keeps_near_duplicates_below_the_threshold_or_when_off(corpus: Path, tmp_path: Path):
    first, second = long_paragraphs(corpus, 2)
    words = first.split(" ")
    words[len(words) // 2] = "elephant"  # 5 of some 100 five-word shingles change: Jaccard ~0.9
    variant = " ".join(words)
    _, strict = clean(tmp_path / "strict", [first, variant, second], near_dup_threshold=0.99)
    _, off = clean(tmp_path / "off", [first, variant, second], near_dedup=False)
    assert strict == off == [first, variant, second]


def test_it_splits_by_a_seeded_hash_of_the_text(corpus: Path, tmp_path: Path):
    def validation(name: str, seed: int) -> set[str]:
        cfg = CleanConfig(input_path=str(corpus), output_dir=str(tmp_path / name), seed=seed,
                          val_fraction=0.1, near_dedup=False)
        clean_corpus(cfg, FakeReporter())
        return set(read_texts(tmp_path / name / "validation.jsonl"))

    first, again, other = validation("a", 1), validation("b", 1), validation("c", 2)
    assert first == again
    assert len(first) > 500 and len(other) > 500
    assert len(first & other) < len(first) / 4  # independent draws share about a tenth


def test_it_leaves_no_output_when_cancelled(corpus: Path, tmp_path: Path):
    class StopAfterFirstBatch(FakeReporter):
        calls = 0

        def should_stop(self) -> bool:
            self.calls += 1
            return self.calls > 1

    reporter = StopAfterFirstBatch()
    out = tmp_path / "out"
    # The sample corpus is a little over one batch (1 MiB of text): one is cleaned, then the stop.
    assert clean_corpus(CleanConfig(input_path=str(corpus), output_dir=str(out)), reporter) is None

    assert reporter.calls == 2
    assert [e["status"] for e in reporter.of_type("status")] == ["running", "cancelled"]
    assert reporter.of_type("artifact") == []
    assert list(out.iterdir()) == []


def test_it_runs_from_the_cli(corpus: Path, tmp_path: Path):
    config = write_config(tmp_path / "clean.json", {
        "input_path": str(corpus), "output_dir": str(tmp_path / "out"), "scrub_emails": True,
    })
    result = run_cli("clean", "--config", str(config), "--seq-start", "5")

    assert result.returncode == 0, result.stderr
    events = parse_events(result.stdout)
    assert [e["seq"] for e in events] == list(range(5, 5 + len(events)))
    assert events[0]["status"] == "running" and events[-1]["status"] == "succeeded"
    metrics = [e for e in events if e["type"] == "metric"]
    assert metrics and metrics[-1]["step"] == 7222 and metrics[-1]["values"]["progress"] == 1.0
    assert set(metrics[-1]["values"]) == {"progress", "docs_per_s", "mb_per_s"}
    (artifact,) = [e for e in events if e["type"] == "artifact"]
    train = (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    assert artifact["metadata"]["split"]["train"] == len(train)
    assert events[-1]["summary"]["documents_kept"] == artifact["metadata"]["documents_kept"]


def test_it_exits_2_naming_input_path_for_a_missing_file(tmp_path: Path):
    config = write_config(tmp_path / "clean.json", {
        "input_path": str(tmp_path / "nope.txt"), "output_dir": str(tmp_path / "out"),
    })
    result = run_cli("clean", "--config", str(config))
    assert result.returncode == 2
    (error,) = parse_events(result.stdout)
    assert error["type"] == "error" and error["field"] == "input_path"
    assert "no such file" in error["message"]
    assert not (tmp_path / "out").exists()


def test_it_names_input_path_for_a_corpus_that_is_not_utf8(tmp_path: Path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Hamlet and his father's ghost\n\nOph\xe9lie sings\n".encode("latin-1"))
    cfg = CleanConfig(input_path=str(bad), output_dir=str(tmp_path / "out"))
    with pytest.raises(ConfigError) as info:
        clean_corpus(cfg, FakeReporter())
    assert info.value.field == "input_path" and "line 3" in info.value.message
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("overrides, field", [
    ({"near_dup_threshold": 0.0}, "near_dup_threshold"),
    ({"near_dup_threshold": 1.5}, "near_dup_threshold"),
    ({"min_chars": 500, "max_chars": 100}, "max_chars"),
    ({"val_fraction": 0.6}, "val_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"),
    ({"min_alpha_ratio": 2}, "min_alpha_ratio"),
    ({"near_dup_ngram": 0}, "near_dup_ngram"),
    ({"input_format": "pdf"}, "input_format"),
    ({"near_dedup": "yes"}, "near_dedup"),
])
def test_it_rejects_bad_options_naming_the_field(overrides: dict[str, Any], field: str):
    with pytest.raises(ConfigError) as info:
        CleanConfig.from_dict({"input_path": "in.txt", "output_dir": "out", **overrides})
    assert info.value.field == field


def test_it_accepts_the_defaults_and_round_trips():
    cfg = CleanConfig.from_dict({"input_path": "in.txt", "output_dir": "out"})
    assert CleanConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.near_dedup and cfg.near_dup_threshold == 0.8 and cfg.near_dup_ngram == 5
