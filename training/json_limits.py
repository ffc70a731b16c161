"""JSON from outside (request bodies, dataset lines, a model's config files), parsed with a depth limit.

Python's parser recurses once per level: 50,000 nested brackets raise RecursionError, which nobody
catches as bad input, and a value a few hundred levels deep still breaks whatever walks it later
(serialisers, templates). `loads` refuses nesting past MAX_DEPTH with a ValueError (a
json.JSONDecodeError, so callers that catch bad JSON already catch this too).

It refuses a string holding half a surrogate pair (`"\ud800"`) the same way: valid JSON, but not
Unicode text: UTF-8 cannot encode it, PostgreSQL's json types refuse it (a 500 when stored) and
tokenizers cannot take it.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64


class TooDeep(json.JSONDecodeError):
    """JSON nested deeper than the limit."""


class NotUnicode(json.JSONDecodeError):
    """A string in the JSON holds a lone surrogate."""


def loads(text: str | bytes | bytearray, max_depth: int = MAX_DEPTH, **json_options: Any) -> Any:
    """`json.loads(text, **json_options)`, refusing a document nested deeper than `max_depth`
    arrays or objects (TooDeep) or with a lone surrogate in a string (NotUnicode)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    # A document with fewer opening brackets than the limit cannot be too deep: the common case
    # costs two C-speed counts, and only bracket-heavy text is scanned.
    if text.count("[") + text.count("{") > max_depth:
        _check_depth(text, max_depth)
    value = json.loads(text, **json_options)
    # Only text with a surrogate's escape (or one itself) is walked; a pair decodes to one character.
    if (hint := _SURROGATE_HINT.search(text)) and _holds_surrogate(value):
        raise NotUnicode("a string holds a lone surrogate (\\ud800 to \\udfff), which is not a Unicode character",
                         text, hint.start())
    return value


def _check_depth(text: str, max_depth: int) -> None:
    """Walk the brackets outside strings; raise TooDeep at the first one past `max_depth`."""
    depth = 0
    for match in _BRACKET_OR_STRING.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"nested deeper than {max_depth} levels", text, match.start())
        elif char in "]}":
            depth -= 1


# A whole string literal (skipped: brackets inside it do not nest) or one bracket.
_BRACKET_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
