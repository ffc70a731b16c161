"""Prompts for the generate stage, from a dataset or typed in. No torch.

A prompt file is read through training.datasets: an sft dataset gives each conversation up to its
last assistant reply, a preference dataset its prompt, an eval dataset its question. A jsonl file
whose records hold only `prompt` (a string, or messages ending with a user message) has no dataset
kind of its own, so its lines are read with the datasets package's jsonl reader directly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from training.config_checks import ConfigError
from training.dataset_files import file_kind, read_records, reader_name
from training.datasets import DatasetError
from training.datasets.formats import read_jsonl
from training.datasets.kinds import detect_kind
from training.datasets.messages import check_messages
from training.datasets.textio import iter_lines

PROMPT_KINDS = ("sft", "preference", "eval")
PROMPT_ONLY = "prompt"
"""The pseudo-kind of a jsonl file of `{"prompt": …}` records."""


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    """The conversation so far, ending with a user message: what a chat template renders."""
    reference: str | None = None
    """The answer the dataset gives (a generation eval record's `answer`, an sft conversation's
    last reply), for a reward that checks answers; None where it gives none."""

    @property
    def text(self) -> str:
        """The prompt as one string: a lone user message's content, else `role: content` turns.
        It is what a model without a chat template reads, and what generations.jsonl records."""
        if len(self.messages) == 1:
            return self.messages[0]["content"]
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in self.messages)


def typed_prompts(texts: list[str]) -> list[Prompt]:
    return [Prompt([{"role": "user", "content": text}]) for text in texts]


def prompts_file_kind(path: str | Path, fmt: str, field_name: str = "dataset") -> str:
    """`sft`, `preference`, `eval` or PROMPT_ONLY; a ConfigError on `field_name` for another kind."""
    if fmt == "jsonl" and _first_jsonl_record_is_prompt_only(path, fmt):
        return PROMPT_ONLY
    kind = file_kind(path, fmt, field_name)
    if kind not in PROMPT_KINDS:
        raise ConfigError(
            field_name,
            f"{Path(path).name} is a {kind} dataset; prompts come from an sft, preference or eval "
            'dataset, or a jsonl file with "prompt"',
        )
    return kind


def read_prompts(path: str | Path, fmt: str, limit: int, field_name: str = "dataset") -> list[Prompt]:
    """The first `limit` prompts of the file."""
    kind = prompts_file_kind(path, fmt, field_name)
    if kind == PROMPT_ONLY:
        prompts = _prompt_only_records(path, fmt, field_name)
    else:
        prompts = (_prompt_of(kind, r) for r in read_records(path, fmt, kind, field_name))
    found = list(islice(prompts, limit))
    if not found:
        raise ConfigError(field_name, f"{Path(path).name} holds no prompts")
    return found


def _prompt_of(kind: str, record: dict[str, Any]) -> Prompt:
    if kind == "sft":
        messages = record["messages"]
        last_reply = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        return Prompt(messages[:last_reply], reference=messages[last_reply]["content"])
    if kind == "preference":
        prompt = record["prompt"]
        return Prompt(prompt) if isinstance(prompt, list) else typed_prompts([prompt])[0]
    # A multiple-choice record's answer is an index into choices the question does not show.
    reference = None if "choices" in record else str(record["answer"])
    return Prompt(typed_prompts([record["question"]])[0].messages, reference=reference)


def _first_jsonl_record_is_prompt_only(path: str | Path, fmt: str) -> bool:
    with contextlib.closing(_raw_jsonl(path, fmt)) as records:
        for raw in records:
            if isinstance(raw, DatasetError):
                continue
            value = raw.value
            return isinstance(value, dict) and "prompt" in value and detect_kind(value) is None
    return False


def _prompt_only_records(path: str | Path, fmt: str, field_name: str) -> Iterator[Prompt]:
    for raw in _raw_jsonl(path, fmt):
        if isinstance(raw, DatasetError):
            raise ConfigError(field_name, str(raw))
        try:
            yield _prompt_only(raw.value)
        except DatasetError as e:
            raise ConfigError(field_name, str(e.located(raw.file, raw.line))) from None


def _prompt_only(value: Any) -> Prompt:
    if not isinstance(value, dict) or "prompt" not in value:
        raise DatasetError("is missing", field="prompt")
    prompt = value["prompt"]
    if isinstance(prompt, list):
        return Prompt(check_messages(prompt, "prompt", last_role="user"))
    if not isinstance(prompt, str) or not prompt.strip():
        raise DatasetError("must be a non-empty string or a list of messages", field="prompt")
    return typed_prompts([prompt])[0]


def _raw_jsonl(path: str | Path, fmt: str) -> Iterator[Any]:
    name = reader_name(path, fmt)
    with Path(path).open("rb") as f:
        yield from read_jsonl(iter_lines(f, name), name)
