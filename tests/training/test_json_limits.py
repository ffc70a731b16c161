"""JSON from outside is parsed with a depth limit: deep nesting is a ValueError, never a RecursionError."""

import json

import pytest

from training.json_limits import MAX_DEPTH, TooDeep, loads


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 50_000])
def test_it_refuses_nesting_past_the_limit_as_bad_json(depth):
    with pytest.raises(json.JSONDecodeError, match=f"nested deeper than {MAX_DEPTH} levels"):
        loads(nested(depth))


def test_it_reads_nesting_up_to_the_limit_and_wide_documents():
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    wide = "[" + ",".join(["[1, {\"a\": [2]}]"] * 10_000) + "]"
    assert len(loads(wide)) == 10_000


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"text": "[" * 500 + "\\\"{" * 100, "more": ["]"] * 3})
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_deep_objects_are_refused_too():
    with pytest.raises(TooDeep):
        loads('{"a":' * 100 + "1" + "}" * 100)
