"""The answer a model's text gives, and whether it is the right one. No torch: the RL stage's
exact-match reward and the evaluate stage both read answers through here.

`extract_answer(text, how)` takes:
- `"gsm8k"`: the number after the last `####` (GSM8K's references and lm-eval's strict match);
- `"last_number"`: the last number in the text (lm-eval's flexible extract: chat models rarely
  write `####`);
- any other string: a regular expression; its last match's first group (or the whole match when
  it has no group) is the answer.

A number is written the way people write it: `1,234` (thousands commas), `-7`, `$18`, `18 dollars`,
`2.50`; its answer is the canonical number (`1234`, `-7`, `18`, `18`, `2.5`), units and currency
dropped. `answers_match` compares numbers as numbers (`18.0` is `18`) and other answers as text,
ignoring case, spacing and a trailing full stop.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

GSM8K = "gsm8k"
LAST_NUMBER = "last_number"
HOWS = (GSM8K, LAST_NUMBER)
"""The named ways to extract; any other `how` is a regular expression."""
MAX_PATTERN_CHARS = 500
"""A longer regular expression is refused: one a person writes in a form is a line."""

# A minus only where it cannot be a range's dash ("3-5" holds 3 and 5, not -5); a thousands comma
# only before exactly three digits ("1,234"; "5,6" is two numbers); no digit, dot or comma before
# the number, so "1.5" is not read as "5" from its middle.
NUMBER = re.compile(r"(?<![\d.,])(?:(?<![\w)])[-\u2212])?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")
GSM8K_MARK = re.compile(r"####([^\n]*)")


def extract_answer(text: str, how: str = GSM8K) -> str | None:
    """The answer in `text`, canonical (numbers as in the module's docstring); None when it holds
    none. A `how` that is neither "gsm8k" nor "last_number" is a regular expression: a bad one is a
    ValueError (`compile_pattern` checks one up front)."""
    if how == GSM8K:
        marks = GSM8K_MARK.findall(text)
        return _first_number(marks[-1]) if marks else None
    if how == LAST_NUMBER:
        numbers = NUMBER.findall(text)
        return _canonical_number(numbers[-1]) if numbers else None
    matches = list(compile_pattern(how).finditer(text))
    if not matches:
        return None
    last = matches[-1]
    found = last.group(1) if last.re.groups else last.group(0)
    if found is None:
        return None
    return normalize_answer(found) or None


@functools.lru_cache(maxsize=64)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The compiled regular expression (compiled once per pattern); a ValueError saying what is
    wrong with it."""
    if not pattern:
        raise ValueError("the regular expression is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the regular expression is {len(pattern)} characters long; at most {MAX_PATTERN_CHARS}")
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"not a regular expression: {e}") from None


def normalize_answer(answer: str) -> str:
    """A number as a canonical number (units and currency dropped), any other answer stripped."""
    number = _sole_number(answer)
    return _canonical_number(number) if number is not None else answer.strip()


def answers_match(predicted: str | None, reference: str | None) -> bool:
    """True when both are answers and the same: equal numbers when both are numbers, else the same
    text, ignoring case, runs of spaces and a trailing full stop. None matches nothing."""
    if predicted is None or reference is None:
        return False
    p, r = _sole_number(predicted), _sole_number(reference)
    if p is not None and r is not None:
        return _decimal(p) == _decimal(r)
    return _text_key(predicted) == _text_key(reference)


def _first_number(text: str) -> str | None:
    found = NUMBER.search(text)
    return _canonical_number(found.group(0)) if found else None


def _sole_number(text: str) -> str | None:
    """The number `text` is (`$1,234`, `18 dollars`, `-3.5%`): its one number, when it holds only
    one and no other digits."""
    numbers = NUMBER.findall(text)
    if len(numbers) != 1:
        return None
    if any(c.isdigit() for c in NUMBER.sub("", text, count=1)):
        return None
    return numbers[0]


def _decimal(number: str) -> Decimal:
    return Decimal(number.replace(",", "").replace("\u2212", "-"))


def _canonical_number(number: str) -> str:
    """`1,234.50` → `1234.5`, `18.00` → `18`, `−7` → `-7`; by the digits, not through a Decimal, whose
    context would round a long one."""
    plain = number.replace(",", "").replace("\u2212", "-")
    whole, _, fraction = plain.removeprefix("-").partition(".")
    canonical = (whole.lstrip("0") or "0") + ("." + fraction.rstrip("0") if fraction.rstrip("0") else "")
    return "-" + canonical if plain.startswith("-") and canonical != "0" else canonical


def _text_key(answer: str) -> str:
    return " ".join(answer.split()).rstrip(".").strip().casefold()
