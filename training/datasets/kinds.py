"""What kind of dataset a record belongs to, and its canonical shape per kind.

| kind | canonical record |
| --- | --- |
| text | `{"text"}` |
| sft | `{"messages": [{"role", "content"}, ...]}`, ending with an assistant message |
| preference | `{"prompt", "chosen", "rejected"}`: three strings, or three message lists (trl) |
| classification | `{"text", "label"}`, the label a string |
| eval | `{"question", "choices", "answer"}` (answer: 0-based index) or `{"question", "answer"}` |
"""

from __future__ import annotations

import string
from typing import Any

from training.datasets.errors import DatasetError, json_type
from training.datasets.messages import check_messages, require
from training.datasets.preference import normalise_preference

KINDS = ("text", "sft", "preference", "classification", "eval")
EXPECTED_FIELDS = (
    'text: "text"; sft: "messages", "prompt"+"completion" or "instruction"+"output"; '
    'preference: "prompt"+"chosen"+"rejected" or hh-rlhf "chosen"+"rejected"; '
    'classification: "text"+"label"; eval: "question"+"answer" (+"choices")'
)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r} (known kinds: {', '.join(KINDS)})")
    return kind


def detect_kind(record: dict[str, Any]) -> str | None:
    """The kind whose fields the record has, or None. Order matters: a record with `text` and
    `label` is classification, one with `prompt`, `chosen` and `rejected` is preference."""
    keys = record.keys()
    if "messages" in keys:
        return "sft"
    if "chosen" in keys and "rejected" in keys:
        return "preference"
    if ("prompt" in keys and "completion" in keys) or ("instruction" in keys and "output" in keys):
        return "sft"
    if "question" in keys and "answer" in keys:
        return "eval"
    if "text" in keys and "label" in keys:
        return "classification"
    if "text" in keys:
        return "text"
    return None


def normalise(kind: str, record: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """(canonical record, the shape it came in) for a record of `kind`; None for a text record
    with no text, which is skipped as a blank line would be. Raises DatasetError with the field."""
    if kind == "text":
        text = require(record, "text", empty_ok=True)
        return ({"text": text}, "text") if text.strip() else None
    if kind == "sft":
        return _sft(record)
    if kind == "preference":
        return normalise_preference(record)
    if kind == "classification":
        return {"text": require(record, "text"), "label": _label(record)}, "text_label"
    return _eval(record)


def texts_of(kind: str, record: dict[str, Any]) -> list[str]:
    """The strings of a canonical record whose lengths and tokens the statistics count."""
    if kind == "sft":
        return [m["content"] for m in record["messages"]]
    if kind == "preference":
        return [m["content"] if isinstance(m, dict) else m for m in _flat(record)]
    if kind == "eval":
        answer = record["answer"]
        return [
            record["question"],
            *record.get("choices", ()),
            *([answer] if isinstance(answer, str) else []),
        ]
    return [record["text"]]


def _flat(record: dict[str, Any]) -> list[Any]:
    values = []
    for key in ("prompt", "chosen", "rejected"):
        value = record[key]
        values.extend(value if isinstance(value, list) else [value])
    return values


def _sft(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if "messages" in record:
        messages = check_messages(record["messages"], "messages", last_role="assistant")
        return {"messages": messages}, "messages"
    if "prompt" in record or "completion" in record:
        return _prompt_completion(record), "prompt_completion"
    if "instruction" in record or "output" in record:
        instruction, output = require(record, "instruction"), require(record, "output")
        context = record.get("input") or ""
        if not isinstance(context, str):
            raise DatasetError(f"must be a string, not {json_type(context)}", field="input")
        user = f"{instruction}\n\n{context}" if context.strip() else instruction
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        return {"messages": messages}, "alpaca"
    reason = 'needs "messages", "prompt" and "completion", or "instruction" and "output"'
    raise DatasetError(reason)


def _prompt_completion(record: dict[str, Any]) -> dict[str, Any]:
    """Strings become one user and one assistant message; message lists are joined (trl's
    conversational prompt-completion)."""
    for key in ("prompt", "completion"):
        if key not in record:
            raise DatasetError("is missing", field=key)
    if isinstance(record["prompt"], list):
        prompt = check_messages(record["prompt"], "prompt", last_role="user")
        completion = check_messages(record["completion"], "completion", last_role="assistant")
        return {"messages": prompt + completion}
    prompt, completion = require(record, "prompt"), require(record, "completion")
    return {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion},
        ]
    }


def _label(record: dict[str, Any]) -> str:
    if "label" not in record:
        raise DatasetError("is missing", field="label")
    label = record["label"]
    if isinstance(label, int) and not isinstance(label, bool):
        return str(label)
    if not isinstance(label, str):
        raise DatasetError(f"must be a string or an integer, not {json_type(label)}", field="label")
    if not label.strip():
        raise DatasetError("must not be empty", field="label")
    return label


def _eval(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    question = require(record, "question")
    if "answer" not in record:
        raise DatasetError("is missing", field="answer")
    answer = record["answer"]
    if "choices" not in record:
        if isinstance(answer, int | float) and not isinstance(answer, bool):
            answer = str(answer)
        elif not isinstance(answer, str) or not answer.strip():
            reason = f"must be a non-empty string or a number, not {json_type(answer)}"
            raise DatasetError(
                reason if not isinstance(answer, str) else "must not be empty", field="answer"
            )
        return {"question": question, "answer": answer}, "generation"
    choices = record["choices"]
    if not isinstance(choices, list) or len(choices) < 2:
        what = f"{len(choices)} choice(s)" if isinstance(choices, list) else json_type(choices)
        raise DatasetError(f"must be a list of at least 2 choices, not {what}", field="choices")
    for i, choice in enumerate(choices):
        if not isinstance(choice, str):
            raise DatasetError(f"must be a string, not {json_type(choice)}", field=f"choices[{i}]")
    return {
        "question": question,
        "choices": choices,
        "answer": _answer_index(answer, choices),
    }, "multiple_choice"


def _answer_index(answer: Any, choices: list[str]) -> int:
    """A 0-based index, a letter (A = 0) or the text of one choice, as a 0-based index. A letter
    wins over a choice that reads the same letter."""
    letters = string.ascii_uppercase[: len(choices)]
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < len(choices):
            return answer
        reason = f"must be a choice index from 0 to {len(choices) - 1}, not {answer}"
    elif isinstance(answer, str):
        if len(answer.strip()) == 1 and answer.strip().upper() in letters:
            return letters.index(answer.strip().upper())
        if answer in choices:
            return choices.index(answer)
        reason = (
            f"must be a letter from A to {letters[-1]}, a 0-based index or the text of a choice, "
            f"not {answer!r}"
        )
    else:
        reason = f"must be a choice index, a letter or a choice's text, not {json_type(answer)}"
    raise DatasetError(reason, field="answer")
