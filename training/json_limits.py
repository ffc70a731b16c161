"""JSON from outside (request bodies, dataset lines, a model's config files), parsed with a depth limit.

Python's parser recurses once per level: 50,000 nested brackets raise RecursionError, which nobody
catches as bad input, and a value a few hundred levels deep still breaks whatever walks it later
(serialisers, templates). `loads` refuses nesting past MAX_DEPTH with a ValueError (a
json.JSONDecodeError, so callers that catch bad JSON already catch this too).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64


class TooDeep(json.JSONDecodeError):
    """JSON nested deeper than the limit."""


def loads(text: str | bytes | bytearray, max_depth: int = MAX_DEPTH, **json_options: Any) -> Any:
    """`json.loads(text, **json_options)`, refusing a document nested deeper than `max_depth`
    arrays or objects."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    # A document with fewer opening brackets than the limit cannot be too deep: the common case
    # costs two C-speed counts, and only bracket-heavy text is scanned.
    if text.count("[") + text.count("{") > max_depth:
        _check_depth(text, max_depth)
    return json.loads(text, **json_options)


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
