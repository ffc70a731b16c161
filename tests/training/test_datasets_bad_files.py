"""training.datasets on small hand-written files: encodings, bad records, every kind's checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.datasets import DatasetError, describe, iter_records


def _write_jsonl(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def _errors(path: Path, kind: str | None = None) -> list[str]:
    return [str(e) for e in describe(path, kind).errors]


def test_it_reports_a_malformed_json_line_and_goes_on(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", {"text": "one"}, '{"text": "two"', {"text": "three"})
    d = describe(path)
    assert _errors(path) == [
        "t.jsonl, line 2: not valid JSON (Expecting ',' delimiter at column 15)"
    ]
    assert (d.kind, d.rows) == ("text", 2)


def test_it_reports_a_missing_field_and_a_wrong_type_with_their_fields(tmp_path):
    path = _write_jsonl(
        tmp_path / "dolly.jsonl",
        {"instruction": "Say hi", "output": "hi"},
        {"instruction": "Say hi"},
        {"instruction": "Say hi", "output": 3},
        {"instruction": "Say hi", "input": ["x"], "output": "hi"},
    )
    assert _errors(path) == [
        'dolly.jsonl, line 2, field "output": is missing',
        'dolly.jsonl, line 3, field "output": must be a string, not a number',
        'dolly.jsonl, line 4, field "input": must be a string, not a list',
    ]


def test_it_names_the_message_and_the_roles_allowed(tmp_path):
    user, bot = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}
    path = _write_jsonl(
        tmp_path / "dolly.jsonl",
        {"messages": [user, bot, {"role": "robot", "content": "x"}, bot]},
        {"messages": [user, bot, user]},
        {"messages": [user, {"role": "system", "content": "be brief"}, bot]},
        {"messages": [user, {"role": "assistant"}]},
        {"messages": []},
    )
    assert _errors(path) == [
        'dolly.jsonl, line 1, field "messages[2].role": '
        "must be one of system, user, assistant, not 'robot'",
        'dolly.jsonl, line 2, field "messages": '
        "must end with a message from the assistant, not the user",
        'dolly.jsonl, line 3, field "messages[1].role": a system message may only come first',
        'dolly.jsonl, line 4, field "messages[1].content": is missing',
        'dolly.jsonl, line 5, field "messages": must hold at least one message',
    ]


def test_it_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    assert _errors(path) == ["empty.jsonl: the file is empty"]
    with pytest.raises(DatasetError, match="the file is empty"):
        list(iter_records(path))


def test_it_refuses_a_file_of_blank_lines_as_holding_no_records(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n\n")
    assert _errors(path) == ["blank.txt: holds no records"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "contains NUL bytes"),
        (bytes(range(1, 32)) * 300, "looks like a binary file"),
    ],
)
def test_it_refuses_a_binary_file(tmp_path, data, reason):
    path = tmp_path / "picture.txt"
    path.write_bytes(data)
    (error,) = describe(path).errors
    assert error.file == "picture.txt" and error.line is None and reason in error.message


def test_it_reads_utf16_and_utf8_with_a_byte_order_mark(tmp_path):
    records = [{"text": "naïve café ☕", "label": "fr"}, {"text": "𝄞 music", "label": "x"}]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in records)
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig"):
        path = tmp_path / f"{encoding}.jsonl"
        data = body.encode(encoding)
        if encoding == "utf-16-be":
            data = b"\xfe\xff" + data
        path.write_bytes(data)
        assert list(iter_records(path)) == records, encoding
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes('text,label\r\n"naïve, yes",fr\r\n'.encode("utf-16"))
    assert list(iter_records(csv_path)) == [{"text": "naïve, yes", "label": "fr"}]


def test_it_reports_undecodable_bytes_with_their_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"first document\n\nsecond\ncaf\xe9 au lait\n\nthird\n")
    d = describe(path)
    assert [str(e) for e in d.errors] == [
        "latin1.txt, line 4: not valid UTF-8 (byte 0xe9 at column 4)"
    ]
    utf16 = tmp_path / "broken.jsonl"
    utf16.write_bytes(
        '{"text": "ok"}\n{"text": "x"}\n'.encode("utf-16-le").join([b"\xff\xfe", b""])
        + b"\x00\xd8\n\x00"
    )
    assert [(e.line, e.message) for e in describe(utf16).errors] == [
        (3, "not valid UTF-16 (byte 0x00 at column 1)")
    ]


def test_it_refuses_unknown_fields_as_an_unknown_kind(tmp_path):
    path = _write_jsonl(tmp_path / "odd.jsonl", {"foo": 1, "bar": 2})
    (error,) = describe(path).errors
    assert str(error).startswith(
        'odd.jsonl, line 1: cannot tell the dataset kind from its fields ("foo", "bar"); '
        'expected text: "text"'
    )


def test_it_refuses_an_unknown_kind_name(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", {"text": "x"})
    with pytest.raises(DatasetError, match="unknown dataset kind 'chat'"):
        describe(path, kind="chat")


def test_it_refuses_mixed_kinds_in_one_file(tmp_path):
    path = _write_jsonl(
        tmp_path / "mixed.jsonl",
        {"prompt": "2+2?", "completion": "4"},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]},
    )
    assert _errors(path) == [
        "mixed.jsonl, line 2: looks like a preference record, but the file's kind is sft "
        "(from line 1); a file holds one kind"
    ]


def test_it_applies_a_given_kind_and_ignores_the_fields_it_does_not_use(tmp_path):
    path = _write_jsonl(tmp_path / "spam.jsonl", {"text": "win money", "label": "spam"})
    assert list(iter_records(path, "text")) == [{"text": "win money"}]
    assert list(iter_records(path)) == [{"text": "win money", "label": "spam"}]
    (error,) = describe(tmp_path / "spam.jsonl", "sft").errors
    assert (
        error.message
        == 'needs "messages", "prompt" and "completion", or "instruction" and "output"'
    )


def test_it_refuses_a_text_file_as_another_kind(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("some prose\n")
    (error,) = describe(path, "sft").errors
    assert str(error) == "doc.txt, line 1: holds plain text documents, which cannot be of kind sft"


def test_it_collects_the_first_twenty_errors_and_stops(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", {"text": "ok"}, *["nope"] * 50)
    d = describe(path)
    assert len(d.errors) == 20 and d.stopped_early
    assert [e.line for e in d.errors] == list(range(2, 22))
    with pytest.raises(DatasetError, match=r"line 2: not valid JSON .*\(and 19\+ more errors\)"):
        d.raise_for_errors()


def test_it_hints_at_a_json_array_in_a_jsonl_file(tmp_path):
    path = tmp_path / "array.jsonl"
    path.write_text('[\n  {"text": "a"}\n]\n')
    assert "looks like a JSON array" in _errors(path)[0]


def test_it_refuses_an_unsupported_file_type(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(
        DatasetError, match=r"data.xlsx: unsupported file type \(supported: .txt, .jsonl"
    ):
        describe(path)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {"prompt": "Hi?", "completion": "Hello."},
            [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
        ),
        (
            {
                "prompt": [
                    {"role": "system", "content": "Be kind."},
                    {"role": "user", "content": "Hi?"},
                ],
                "completion": [{"role": "assistant", "content": "Hello.", "weight": 1}],
            },
            [
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "Hi?"},
                {"role": "assistant", "content": "Hello."},
            ],
        ),
        (
            {"instruction": "Add.", "input": "", "output": "2"},
            [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "2"}],
        ),
        (
            {"instruction": "Add.", "input": "1+1", "output": "2"},
            [{"role": "user", "content": "Add.\n\n1+1"}, {"role": "assistant", "content": "2"}],
        ),
        (
            {"instruction": "Add.", "input": None, "output": "2"},
            [{"role": "user", "content": "Add."}, {"role": "assistant", "content": "2"}],
        ),
    ],
)
def test_it_normalises_every_sft_shape_to_messages(tmp_path, record, expected):
    path = _write_jsonl(tmp_path / "sft.jsonl", record)
    assert list(iter_records(path)) == [{"messages": expected}]


def test_it_keeps_trl_preference_records_and_splits_implicit_prompts(tmp_path):
    user = {"role": "user", "content": "Hi?"}
    good, bad = (
        {"role": "assistant", "content": "Hello!"},
        {"role": "assistant", "content": "Go away."},
    )
    path = _write_jsonl(
        tmp_path / "pref.jsonl",
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": [user], "chosen": [good], "rejected": [bad]},
        {"chosen": [user, good], "rejected": [user, bad]},
        {
            "chosen": "\n\nHuman: Hi?\n\nAssistant: Hello!",
            "rejected": "\n\nHuman: Hi?\n\nAssistant: Go away.",
        },
    )
    assert list(iter_records(path)) == [
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": [user], "chosen": [good], "rejected": [bad]},
        {"prompt": [user], "chosen": [good], "rejected": [bad]},
        {"prompt": "\n\nHuman: Hi?\n\nAssistant:", "chosen": " Hello!", "rejected": " Go away."},
    ]
    assert describe(path).breakdown["shapes"] == {
        "prompt": 1,
        "prompt_messages": 1,
        "messages": 1,
        "hh": 1,
    }


def test_it_refuses_preference_records_it_cannot_split(tmp_path):
    user = {"role": "user", "content": "Hi?"}
    good = {"role": "assistant", "content": "Hello!"}
    path = _write_jsonl(
        tmp_path / "pref.jsonl",
        {"chosen": "Hello!", "rejected": "Go away."},
        {"chosen": [user, good], "rejected": [user, good]},
        {"chosen": [user, good], "rejected": "Go away."},
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": ""},
    )
    assert _errors(path) == [
        'pref.jsonl, line 1, field "chosen": without "prompt", must be an hh-rlhf transcript '
        '("\\n\\nHuman: …\\n\\nAssistant: …")',
        'pref.jsonl, line 2, field "rejected": '
        "chosen and rejected must differ after their shared prompt",
        'pref.jsonl, line 3, field "rejected": '
        "must be of the same type as chosen: a list, not a string",
        'pref.jsonl, line 4, field "rejected": must not be empty',
    ]


def test_it_reads_multiple_choice_answers_as_indexes_letters_or_text(tmp_path):
    q = {"question": "Which is red?", "choices": ["sky", "blood", "grass"]}
    path = _write_jsonl(
        tmp_path / "mc.jsonl",
        {**q, "answer": 1},
        {**q, "answer": "B"},
        {**q, "answer": "b"},
        {**q, "answer": "blood"},
        {**q, "answer": 3},
        {**q, "answer": "D"},
        {**q, "answer": True},
        {"question": "Pick", "choices": ["only"], "answer": 0},
        {"question": "2+2?", "answer": 4},
        {"question": "2+2?", "answer": ""},
    )
    d = describe(path)
    assert d.rows == 5 and d.breakdown["shapes"] == {"multiple_choice": 4, "generation": 1}
    assert [r["answer"] for r in read_first(path, 4)] == [1, 1, 1, 1]
    assert [str(e) for e in d.errors] == [
        'mc.jsonl, line 5, field "answer": must be a choice index from 0 to 2, not 3',
        'mc.jsonl, line 6, field "answer": must be a letter from A to C, a 0-based index '
        "or the text of a choice, not 'D'",
        'mc.jsonl, line 7, field "answer": '
        "must be a choice index, a letter or a choice's text, not true/false",
        'mc.jsonl, line 8, field "choices": must be a list of at least 2 choices, not 1 choice(s)',
        'mc.jsonl, line 10, field "answer": must not be empty',
    ]


def test_it_reads_a_numeric_generation_answer_as_text(tmp_path):
    path = _write_jsonl(tmp_path / "gen.jsonl", {"question": "2+2?", "answer": 4, "id": 7})
    assert list(iter_records(path)) == [{"question": "2+2?", "answer": "4"}]


def test_it_reads_classification_from_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "reviews.csv"
    csv_path.write_text('text,label\n"Great, loved it",pos\n"Two\nlines",neg\nbad row\n,neg\n')
    d = describe(csv_path)
    assert d.breakdown["labels"] == {"pos": 1, "neg": 1}
    assert [str(e) for e in d.errors] == [
        "reviews.csv, line 5: has 1 columns, but the header row has 2",
        'reviews.csv, line 6, field "text": must not be empty',
    ]
    assert read_first(csv_path, 2) == [
        {"text": "Great, loved it", "label": "pos"},
        {"text": "Two\nlines", "label": "neg"},
    ]
    jsonl = _write_jsonl(
        tmp_path / "labels.jsonl", {"text": "a", "label": 0}, {"text": "b", "label": 1.5}
    )
    assert [str(e) for e in describe(jsonl).errors] == [
        'labels.jsonl, line 2, field "label": must be a string or an integer, not a number'
    ]
    assert next(iter_records(jsonl)) == {"text": "a", "label": "0"}


def test_it_refuses_a_csv_without_a_usable_header(tmp_path):
    headerless = tmp_path / "spam.tsv"
    headerless.write_text("ham\tGo until jurong point\nspam\tWIN\n")
    assert "cannot tell the dataset kind from its columns" in _errors(headerless)[0]
    doubled = tmp_path / "twice.csv"
    doubled.write_text("text,text\na,b\n")
    assert _errors(doubled) == ["twice.csv, line 1: the header row names text twice"]


def read_first(path: Path, n: int) -> list[dict]:
    records = iter_records(path)
    return [next(records) for _ in range(n)]


def test_it_reports_a_missing_file(tmp_path):
    d = describe(tmp_path / "gone.jsonl")
    assert (d.bytes, [str(e) for e in d.errors]) == (0, ["gone.jsonl: no such file"])


def test_it_reports_undecodable_bytes_in_a_csv_with_their_line(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"text,label\ngood,pos\nna\xefve,neg\nfine,neg\n")
    d = describe(path)
    assert d.rows == 2
    assert [str(e) for e in d.errors] == [
        "labels.csv, line 3: not valid UTF-8 (byte 0xef at column 3)"
    ]


def test_it_refuses_a_line_longer_than_the_limit(tmp_path, monkeypatch):
    from training.datasets import textio

    monkeypatch.setattr(textio, "MAX_LINE_BYTES", 100)
    path = _write_jsonl(tmp_path / "long.jsonl", {"text": "short"}, {"text": "x" * 200})
    assert _errors(path) == ["long.jsonl, line 2: is longer than 100 bytes"]


def test_it_cuts_a_text_document_longer_than_the_limit_at_a_line(tmp_path, monkeypatch):
    from training.datasets import formats

    monkeypatch.setattr(formats, "MAX_DOCUMENT_CHARS", 30)
    path = tmp_path / "wall.txt"
    path.write_text("".join(f"line number {i}\n" for i in range(6)))
    texts = [r["text"] for r in iter_records(path)]
    assert texts == [
        "line number 0\nline number 1\nline number 2",
        "line number 3\nline number 4\nline number 5",
    ]


def test_it_refuses_preference_pairs_whose_answers_are_the_same(tmp_path):
    turn = "\n\nHuman: Hi?\n\nAssistant:"
    path = _write_jsonl(
        tmp_path / "pref.jsonl",
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."},
        {"prompt": "Hi?", "chosen": "Hello!", "rejected": "Hello! "},
        {"chosen": turn + " Same.", "rejected": turn + " Same."},
        {"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "A"}],
         "rejected": [{"role": "assistant", "content": "A"}]},
    )
    same = 'field "rejected": is the same answer as chosen: a pair must prefer one answer to another'
    assert _errors(path) == [f"pref.jsonl, line {n}, {same}" for n in (2, 3, 4)]


def test_it_reports_a_deeply_nested_line_as_bad_json_and_goes_on(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", {"text": "one"}, '{"text": ' + "[" * 50_000 + "]" * 50_000 + "}",
                        {"text": "three"})
    d = describe(path)
    assert _errors(path) == ["t.jsonl, line 2: not valid JSON (nested deeper than 64 levels at column 73)"]
    assert (d.kind, d.rows) == ("text", 2)
