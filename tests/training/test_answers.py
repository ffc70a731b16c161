"""training/answers.py: the answer a text gives (GSM8K's `#### 42`, the last number, a regular
expression) and whether two answers are the same, on GSM8K-style strings and real GSM8K answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.answers import MAX_PATTERN_CHARS, answers_match, compile_pattern, extract_answer

GSM8K_TEST = Path("/work/shared/data/eval/gsm8k-test-300.jsonl")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18"),
        ("So he made a profit of 200,000-130,000=$<<200000-130000=70000>>70,000\n#### 70000", "70000"),
        ("#### 1,234", "1234"),
        ("#### -5", "-5"),
        ("#### $18 dollars", "18"),
        ("#### 2.50", "2.5"),
        ("#### 18.00", "18"),
        ("first #### 3\nthen corrected #### 4", "4"),
    ],
)
def test_it_reads_the_number_after_gsm8ks_mark(text, answer):
    assert extract_answer(text, "gsm8k") == answer


@pytest.mark.parametrize("text", ["The answer is 18.", "####", "#### none\n", ""])
def test_it_finds_no_gsm8k_answer_without_a_number_after_the_mark(text):
    assert extract_answer(text, "gsm8k") is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("So the total is 3 + 4 = 7 apples.", "7"),
        ("The answer is $1,234.", "1234"),
        ("It dropped to -12 degrees", "-12"),
        ("It dropped to \u221212 degrees", "-12"),
        ("between 3-5 hours", "5"),
        ("1.5 times 0.50", "0.5"),
        ("I ate 1,2 and 3", "3"),
        ("007", "7"),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_it_reads_the_last_number_with_commas_negatives_and_units(text, answer):
    assert extract_answer(text, "last_number") == answer


def test_it_finds_no_number_in_words():
    assert extract_answer("I do not know.", "last_number") is None


def test_a_regular_expression_takes_its_last_matchs_first_group_or_the_whole_match():
    assert extract_answer("Answer: Rome. Final answer: Paris.", r"answer:\s*(\w+)") == "Paris"
    assert extract_answer("The answer is (B)", r"\([A-D]\)") == "(B)"
    assert extract_answer("Answer: $1,200 dollars", r"Answer:\s*(.+)") == "1200"
    assert extract_answer("nothing here", r"Answer:\s*(.+)") is None


@pytest.mark.parametrize(
    ("pattern", "says"),
    [("(", "not a regular expression"), ("", "empty"), ("a" * (MAX_PATTERN_CHARS + 1), "at most")],
)
def test_a_bad_regular_expression_says_what_is_wrong(pattern, says):
    with pytest.raises(ValueError, match=says):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("predicted", "reference", "same"),
    [
        ("18", "18", True),
        ("18.0", "18", True),
        ("$1,234", "1234", True),
        ("18 dollars", "18", True),
        ("-5", "5", False),
        ("17", "18", False),
        ("Paris.", "paris", True),
        ("New  York", "new york", True),
        ("3/4", "3/4", True),
        ("3/4", "0.75", False),
        (None, "18", False),
        ("18", None, False),
    ],
)
def test_answers_match_compares_numbers_as_numbers_and_words_as_words(predicted, reference, same):
    assert answers_match(predicted, reference) is same


def test_every_real_gsm8k_answer_has_a_number_and_matches_itself_written_by_a_model():
    for line in GSM8K_TEST.read_text().splitlines():
        reference = extract_answer(json.loads(line)["answer"], "gsm8k")
        assert reference is not None
        spoken = f"Let me think. So the answer is {int(reference):,} dollars." if reference.isdigit() else reference
        assert answers_match(extract_answer(spoken, "last_number"), reference)
