"""Comparison items from outside: item dicts checked field by field, and the pairs JSONL a user
uploads (`prompt`, `response_a`, `response_b`, optional `model_a`, `model_b`, `gold`)."""

import json
from collections.abc import Iterable
from typing import Any

from lab.feedback.models import MAX_ID, Label
from training.json_limits import loads

MAX_ERRORS = 20
TEXT_FIELDS = ("prompt", "response_a", "response_b")
LABEL_FIELDS = ("model_a", "model_b")


class ItemError(Exception):
    """A bad item: which one (a line of a file, or the index in a list), which field, and why."""

    def __init__(self, message: str, field: str = "", line: int | None = None, file: str = ""):
        self.message, self.field, self.line, self.file = message, field, line, file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.file, f"line {self.line}" if self.line else "") if part)
        what = f'field "{self.field}": ' if self.field else ""
        return f"{where}: {what}{self.message}" if where else f"{what}{self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "error": self.message}


class ItemErrors(Exception):
    """Every bad item found (up to MAX_ERRORS); nothing was added."""

    def __init__(self, errors: list[ItemError]):
        self.errors = errors
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(f"{errors[0]}{more}")


def check_item(raw: Any) -> dict:
    """The item dict add_items() stores, from a dict with the documented keys. Raises ItemError."""
    if not isinstance(raw, dict):
        raise ItemError(f"must be a JSON object, not {type(raw).__name__}")
    item: dict[str, Any] = {}
    for field in TEXT_FIELDS:
        value = raw.get(field)
        if value is None:
            raise ItemError("is missing", field)
        if not isinstance(value, str):
            raise ItemError(f"must be a string, not {type(value).__name__}", field)
        if not value.strip():
            raise ItemError("is empty", field)
        item[field] = value
    for field in LABEL_FIELDS:
        value = raw.get(field) or ""
        if not isinstance(value, str):
            raise ItemError(f"must be a string, not {type(value).__name__}", field)
        if len(value) > 200:
            raise ItemError("is longer than 200 characters", field)
        item[field] = value
    for field in ("artifact_a", "artifact_b"):
        value = raw.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID):
            raise ItemError(f"must be an artifact id (a positive 64-bit integer) or null, not {_short(value)}", field)
        item[field] = value
    gold = raw.get("gold")
    if gold not in (None, "", *Label.values):
        raise ItemError(f"must be one of {', '.join(Label.values)} or null, not {_short(gold)}", "gold")
    item["gold"] = gold or ""
    unknown = set(raw) - {*TEXT_FIELDS, *LABEL_FIELDS, "artifact_a", "artifact_b", "gold"}
    if unknown:
        raise ItemError("unknown field (expected prompt, response_a, response_b, model_a, model_b, gold)",
                        sorted(unknown)[0])
    return item


def _short(value: Any, limit: int = 60) -> str:
    """A bad value as an error message quotes it: cut short (it may be a huge list or number)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # its digits may be too many even to print
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_items(raws: Iterable[Any]) -> list[dict]:
    """All items checked; raises ItemErrors naming each bad one by its index (line = index + 1)."""
    items, errors = [], []
    for index, raw in enumerate(raws):
        try:
            items.append(check_item(raw))
        except ItemError as e:
            e.line = index + 1
            errors.append(e)
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise ItemErrors(errors)
    return items


def read_pairs_jsonl(data: bytes, filename: str = "pairs.jsonl") -> list[dict]:
    """Every line of a pairs file checked; raises ItemErrors naming the file, line and field."""
    items, errors = [], []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ItemErrors([ItemError("is not UTF-8 text", line=line, file=filename)]) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(check_item(loads(line)))
        except json.JSONDecodeError as e:
            errors.append(ItemError(f"is not valid JSON ({e.msg} at column {e.colno})", line=number, file=filename))
        except ValueError:  # Python reads no integer of more than 4,300 digits
            errors.append(ItemError("holds a number too long to read (over 4,300 digits)", line=number, file=filename))
        except ItemError as e:
            e.line, e.file = number, filename
            errors.append(e)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise ItemErrors(errors)
    if not items:
        raise ItemErrors([ItemError("holds no pairs", file=filename)])
    return items
