"""describe()'s statistics, Parquet, token counts, flat memory, and the torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from tests.training.helpers import REPO
from training.datasets import describe, iter_records, read_page
from training.datasets.stats import EDGES, MAX_KEYS, OTHER, Breakdown, Histogram


def test_it_bins_lengths_in_fixed_log_spaced_bins():
    h = Histogram()
    for n in [0, 1, 5, 5, 100, 1000, 10**12]:
        h.add(n)
    d = h.to_dict()
    assert (d["count"], d["min"], d["max"], d["total"]) == (7, 0, 10**12, 10**12 + 1111)
    assert d["bins"][0] == [0, 1, 1] and d["bins"][-1][2] == 1
    assert sum(count for _, _, count in d["bins"]) == 7
    assert len(h.counts) == len(EDGES)  # the same bins whatever is added
    assert h.quantile(0) == 0 and h.quantile(1) == 10**12


def test_it_estimates_quantiles_within_a_bin():
    h = Histogram()
    for n in range(1, 1001):
        h.add(n)
    assert h.quantile(0.5) == pytest.approx(500, rel=0.1)
    assert h.quantile(0.9) == pytest.approx(900, rel=0.1)
    assert Histogram().to_dict()["p50"] is None


def test_it_caps_the_values_a_breakdown_counts():
    b = Breakdown()
    for i in range(MAX_KEYS + 500):
        b.add(f"label-{i}")
    counts = b.to_dict()
    assert len(counts) == MAX_KEYS + 1 and counts[OTHER] == 500


def test_it_keeps_memory_flat_over_a_large_file(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i in range(60_000):
            f.write(
                json.dumps({"text": f"record {i} " + "word " * (i % 50), "label": f"l{i % 7}"})
                + "\n"
            )
    tracemalloc.start()
    try:
        d = describe(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert d.ok and d.rows == 60_000 and len(d.breakdown["labels"]) == 7
    assert path.stat().st_size > 10 * peak, (path.stat().st_size, peak)


def _parquet(path: Path, rows: list[dict], row_group_size: int = 100) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


def test_it_reads_parquet_in_batches_with_row_numbers(tmp_path):
    rows = [{"text": f"document {i}", "source": "web"} for i in range(2500)]
    rows[1234]["text"] = None
    path = _parquet(tmp_path / "web.parquet", rows)
    d = describe(path)
    assert (d.kind, d.rows) == ("text", 2499)
    assert [str(e) for e in d.errors] == [
        'web.parquet, line 1235, field "text": must be a string, not null'
    ]
    assert [tuple(c) for c in d.page_index] == [(0, 0, 1), (1000, 1000, 1001), (2000, 2001, 2002)]


def test_it_pages_through_parquet_with_its_index(tmp_path):
    user = {"role": "user", "content": "Hi"}
    rows = [
        {"messages": [user, {"role": "assistant", "content": f"Hello {i}"}]} for i in range(2500)
    ]
    path = _parquet(tmp_path / "chat.parquet", rows, row_group_size=300)
    d = describe(path)
    assert (d.kind, d.rows, d.breakdown["roles"]) == (
        "sft",
        2500,
        {"user": 2500, "assistant": 2500},
    )
    assert read_page(path, 2105, 3, index=d.page_index) == rows[2105:2108]
    assert read_page(path, 2105, 3) == rows[2105:2108]
    assert list(iter_records(path)) == rows


def test_it_refuses_a_file_that_is_not_parquet(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("text\nhello\n")
    (error,) = describe(path).errors
    assert error.message.startswith("not a readable Parquet file")


def _word_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tokenizer = tokenizers.Tokenizer(WordLevel({"[UNK]": 0, "hi": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    return tokenizer


def test_it_counts_tokens_per_record_under_a_tokenizer(tmp_path):
    path = tmp_path / "chat.jsonl"
    records = [
        {"prompt": "one two three", "completion": "four"},  # 4 tokens
        {
            "messages": [
                {"role": "system", "content": "a b"},
                {"role": "user", "content": "c"},
                {"role": "assistant", "content": "d e f"},
            ]
        },  # 6 tokens
    ] * 300  # more than one batch of the token counter
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    d = describe(path, tokenizer=_word_tokenizer())
    assert d.tokens is not None
    assert (d.tokens["count"], d.tokens["total"], d.tokens["min"], d.tokens["max"]) == (
        600,
        3000,
        4,
        6,
    )
    assert describe(path).tokens is None


def test_it_describes_the_dataset_as_json(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "hello"}\n{"text": 5}\n')
    d = json.loads(json.dumps(describe(path).to_dict()))
    assert d["kind"] == "text" and d["rows"] == 1 and d["chars"]["total"] == 5
    assert d["errors"] == [
        {
            "file": "t.jsonl",
            "line": 2,
            "field": "text",
            "message": "must be a string, not a number",
            "text": 't.jsonl, line 2, field "text": must be a string, not a number',
        }
    ]


def test_it_names_the_upload_in_errors_and_takes_its_format_from_that_name(tmp_path):
    stored = tmp_path / "3f2a9c"
    stored.write_text("label\ttext\nham\thi\nspam\n")
    d = describe(stored, name="my sms.tsv")
    assert (d.kind, d.rows) == ("classification", 1)
    assert [str(e) for e in d.errors] == [
        "my sms.tsv, line 3: has 1 columns, but the header row has 2"
    ]


def test_it_pages_a_utf16_file_by_reading_from_the_top(tmp_path):
    path = tmp_path / "u16.jsonl"
    path.write_bytes(
        "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(1500)).encode("utf-16")
    )
    d = describe(path)
    assert d.rows == 1500 and d.page_index == []
    assert read_page(path, 1200, 2, index=d.page_index) == [{"text": "t1200"}, {"text": "t1201"}]


def test_it_resumes_a_utf8_file_with_a_byte_order_mark_at_a_checkpoint(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\n\n".join(f"doc {i}\nline two ☕" for i in range(2100)).encode("utf-8-sig"))
    d = describe(path)
    assert d.page_index[0] == (0, 0, 1) and d.page_index[2].record == 2000
    assert read_page(path, 2050, 1, index=d.page_index) == [{"text": "doc 2050\nline two ☕"}]


def test_it_never_imports_torch_or_the_web_stack():
    code = (
        "import json, sys\n"
        "import training.datasets as ds\n"
        f"d = ds.describe({str(REPO / 'pyproject.toml')!r}, name='notes.txt')\n"
        "assert d.ok, d.errors\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}  # no DJANGO_SETTINGS_MODULE
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    loaded = json.loads(out.stdout)
    heavy = (
        "torch",
        "transformers",
        "trl",
        "numpy",
        "pyarrow",
        "django",
        "celery",
        "redis",
        "lab",
        "workers",
    )
    assert "training.datasets.describe" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in heavy) == []
