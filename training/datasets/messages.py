"""Chat messages as trl takes them: a list of `{"role", "content"}` objects."""

from __future__ import annotations

from typing import Any

from training.datasets.errors import DatasetError, json_type

ROLES = ("system", "user", "assistant")


def check_messages(value: Any, field: str, *, last_role: str | None = None) -> list[dict[str, str]]:
    """The messages as `[{"role", "content"}]`, other keys dropped.

    Each needs a role of ROLES and non-empty string content; a system message only comes first.
    `last_role`, when given, is the role the conversation must end with.
    """
    if not isinstance(value, list):
        raise DatasetError(f"must be a list of messages, not {json_type(value)}", field=field)
    if not value:
        raise DatasetError("must hold at least one message", field=field)
    messages = []
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            reason = f'must be an object with "role" and "content", not {json_type(message)}'
            raise DatasetError(reason, field=where)
        role = require(message, "role", where)
        if role not in ROLES:
            raise DatasetError(
                f"must be one of {', '.join(ROLES)}, not {role!r}", field=f"{where}.role"
            )
        if role == "system" and i > 0:
            raise DatasetError("a system message may only come first", field=f"{where}.role")
        messages.append({"role": role, "content": require(message, "content", where)})
    if last_role is not None and messages[-1]["role"] != last_role:
        reason = f"must end with a message from the {last_role}, not the {messages[-1]['role']}"
        raise DatasetError(reason, field=field)
    return messages


def require(
    record: dict[str, Any], key: str, parent: str | None = None, *, empty_ok: bool = False
) -> str:
    """`record[key]` as a string that is not blank (unless `empty_ok`), else a DatasetError."""
    field = f"{parent}.{key}" if parent else key
    if key not in record:
        raise DatasetError("is missing", field=field)
    value = record[key]
    if not isinstance(value, str):
        raise DatasetError(f"must be a string, not {json_type(value)}", field=field)
    if not empty_ok and not value.strip():
        raise DatasetError("must not be empty", field=field)
    return value
