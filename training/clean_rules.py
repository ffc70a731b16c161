"""The per-document rules of the clean stage: normalisation, PII scrubbing, quality measures.

Pure functions on one document's text. They run on every document of corpora of many gigabytes,
so each takes a C-speed path (a regex, `bytes.translate`) and skips what a quick test rules out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# Unicode's control characters (category Cc: C0, DEL and C1) except tab and newline. (A lone surrogate
# never arrives: the readers refuse its line, training.json_limits and training.datasets.textio.)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")

# Only layouts that ordinary numbers do not take: years (1603), decimals (3.14), dates (2023-01-15),
# thousands (1,000,000) and ISBNs never match. A match needs 7+ digits besides (`_replace_phones`).
_PHONE = re.compile(
    r"""
    (?<![\w+.-])
    (?:
        \+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,4})){1,6}   # +44 20 7946 0958, +1 (555) 123-4567
      | \(\d{3}\)[ .-]?\d{3}[ .-]\d{4}                    # (555) 123-4567
      | \d{3}[ .-]\d{3}[ .-]\d{4}                         # 555-123-4567, 555.123.4567
      | 0\d{1,4}[ -]\d{3,4}[ -]?\d{3,4}                   # 020 7946 0958, 030-1234-5678
    )
    (?![\w-]|[.,]\d)
    """,
    re.VERBOSE,
)
_MIN_PHONE_DIGITS = 7
_DIGITS = re.compile(r"\d")
# What every phone number above holds: 7+ characters of digits and separators. Quick to look for and
# rare in prose, so the slower exact pattern runs only on the lines that have it.
_PHONE_HINT = re.compile(r"[+(0-9][0-9 ().+-]{5,}[0-9]")

_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"
_ASCII_NON_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())
_NON_LETTERS = re.compile(r"[\W\d_]+")  # \w is letters, digits and _: take the digits and _ away
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC (a composed and a decomposed `é` become one), without control characters (but tab and
    newline)."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text))


def scrub_emails(text: str) -> tuple[str, int]:
    """(text with each e-mail address replaced by `<EMAIL>`, how many were replaced)."""
    return _scrub_lines(text, _find_at_sign, lambda line: _EMAIL.subn("<EMAIL>", line))


def scrub_phones(text: str) -> tuple[str, int]:
    """(text with each phone number replaced by `<PHONE>`, how many were replaced)."""
    return _scrub_lines(text, _find_phone_hint, _replace_phones)


def _find_at_sign(text: str, start: int) -> int:
    return text.find("@", start)


def _find_phone_hint(text: str, start: int) -> int:
    match = _PHONE_HINT.search(text, start)
    return match.start() if match else -1


def _replace_phones(line: str) -> tuple[str, int]:
    replaced = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal replaced
        if len(_DIGITS.findall(match.group())) < _MIN_PHONE_DIGITS:
            return match.group()
        replaced += 1
        return "<PHONE>"

    return _PHONE.sub(replace, line), replaced


def _scrub_lines(
    text: str, find_hint: Callable[[str, int], int], scrub: Callable[[str], tuple[str, int]]
) -> tuple[str, int]:
    """`scrub` applied to each line in which `find_hint` finds a hint (its index, or -1 for none);
    the text and the count of replacements.

    The regexes try every position, slowly; neither addresses nor phone numbers span lines. So
    they run only over the few lines that hold a hint, which a fast scan finds.
    """
    parts: list[str] = []
    done = replaced = 0  # text[:done] is in parts
    while (hint := find_hint(text, done)) >= 0:
        start = text.rfind("\n", done, hint) + 1 or done
        end = text.find("\n", hint)
        end = len(text) if end < 0 else end
        line, n = scrub(text[start:end])
        parts += (text[done:start], line)
        replaced += n
        done = end
    if not parts:
        return text, 0
    parts.append(text[done:])
    return "".join(parts), replaced


def alpha_ratio(text: str) -> float:
    """Letters as a share of the non-whitespace characters; 0.0 for a blank text."""
    if text.isascii():
        data = text.encode("ascii")
        non_space = len(data.translate(None, _ASCII_WHITESPACE))
        letters = len(data.translate(None, _ASCII_NON_LETTERS))
    else:
        non_space = len(_WHITESPACE.sub("", text))
        letters = len(_NON_LETTERS.sub("", text))
    return letters / non_space if non_space else 0.0


def repeated_line_ratio(text: str) -> float:
    """Share of the non-empty lines that repeat an earlier line of the same text."""
    if "\n" not in text:
        return 0.0
    lines = text.split("\n")
    distinct = set(lines)
    distinct.discard("")
    counted = len(lines) - lines.count("")
    return 1 - len(distinct) / counted if counted else 0.0
