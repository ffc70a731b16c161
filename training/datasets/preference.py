"""Preference pairs in trl's shape: `{"prompt", "chosen", "rejected"}`, strings or messages, and
the pair's `margin` when it has one.

Records without a prompt are split into one: hh-rlhf transcripts at their last assistant turn,
message lists at the end of the messages both share.
"""

from __future__ import annotations

import math
from typing import Any

from training.datasets.errors import DatasetError, json_type
from training.datasets.messages import check_messages, require

HH_ASSISTANT = "\n\nAssistant:"
MAX_MARGIN = 100
"""A larger margin between two rewards is no preference a sigmoid can tell from an infinite one."""


def normalise_preference(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The canonical record and the shape it came in: `prompt`, `prompt_messages`, `hh` or
    `messages`. A pair whose two answers are the same prefers nothing, and is refused."""
    canonical, shape = _canonical(record)
    if _answer(canonical["chosen"]) == _answer(canonical["rejected"]):
        raise DatasetError("is the same answer as chosen: a pair must prefer one answer to another",
                           field="rejected")
    if "margin" in record:
        canonical["margin"] = _margin(record["margin"])
    return canonical, shape


def _margin(value: Any) -> float:
    """How much better chosen is (a campaign's export: the winners' mean strength): a finite number
    of at most MAX_MARGIN, which a reward model's loss subtracts from the pair's reward gap."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"must be a number, not {json_type(value)}", field="margin")
    if not math.isfinite(value) or abs(value) > MAX_MARGIN:
        raise DatasetError(f"must be a finite number between -{MAX_MARGIN} and {MAX_MARGIN}", field="margin")
    return float(value)


def _answer(reply: Any) -> Any:
    return reply.strip() if isinstance(reply, str) else reply


def _canonical(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    for key in ("chosen", "rejected"):
        if key not in record:
            raise DatasetError("is missing", field=key)
    if "prompt" in record:
        return _with_prompt(record)
    chosen, rejected = record["chosen"], record["rejected"]
    if isinstance(chosen, str) and isinstance(rejected, str):
        prompt, chosen, rejected = split_hh(chosen, rejected)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, "hh"
    if isinstance(chosen, list) and isinstance(rejected, list):
        return _split_messages(chosen, rejected), "messages"
    reason = f"must be of the same type as chosen: {json_type(chosen)}, not {json_type(rejected)}"
    raise DatasetError(reason, field="rejected")


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen reply, rejected reply) of two hh-rlhf transcripts.

    The prompt is the dialogue up to and including the last "\\n\\nAssistant:", which both must
    share; the replies keep their leading space, as in the reference DPO preprocessing.
    """
    cut = []
    for key, text in (("chosen", chosen), ("rejected", rejected)):
        at = text.rfind(HH_ASSISTANT)
        if at < 0:
            reason = (
                'without "prompt", must be an hh-rlhf transcript '
                '("\\n\\nHuman: …\\n\\nAssistant: …")'
            )
            raise DatasetError(reason, field=key)
        cut.append(at + len(HH_ASSISTANT))
    prompt = chosen[: cut[0]]
    if rejected[: cut[1]] != prompt:
        differ = next(
            (i for i, (a, b) in enumerate(zip(prompt, rejected, strict=False)) if a != b),
            min(len(prompt), cut[1]),
        )
        reason = (
            'must share the dialogue up to its last "\\n\\nAssistant:" with chosen, '
            f"but they differ from character {differ + 1}"
        )
        raise DatasetError(reason, field="rejected")
    replies = chosen[cut[0] :], rejected[cut[1] :]
    for key, reply in zip(("chosen", "rejected"), replies, strict=True):
        if not reply.strip():
            raise DatasetError("the final assistant reply is empty", field=key)
    return prompt, replies[0], replies[1]


def _with_prompt(record: dict[str, Any]) -> tuple[dict[str, Any], str]:
    prompt = record["prompt"]
    if isinstance(prompt, str):
        require(record, "prompt")
        chosen, rejected = (require(record, key) for key in ("chosen", "rejected"))
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}, "prompt"
    if isinstance(prompt, list):
        canonical = {"prompt": check_messages(prompt, "prompt", last_role="user")}
        for key in ("chosen", "rejected"):
            canonical[key] = check_messages(record[key], key, last_role="assistant")
        return canonical, "prompt_messages"
    raise DatasetError(
        f"must be a string or a list of messages, not {json_type(prompt)}", field="prompt"
    )


def _split_messages(chosen: list[Any], rejected: list[Any]) -> dict[str, Any]:
    """trl's implicit prompt: the messages both conversations begin with."""
    chosen = check_messages(chosen, "chosen", last_role="assistant")
    rejected = check_messages(rejected, "rejected", last_role="assistant")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise DatasetError("chosen and rejected share no prompt message", field="rejected")
    if shared == len(chosen) or shared == len(rejected):
        raise DatasetError(
            "chosen and rejected must differ after their shared prompt", field="rejected"
        )
    prompt = chosen[:shared]
    if prompt[-1]["role"] != "user":
        reason = "the messages chosen and rejected share must end with a user message"
        raise DatasetError(reason, field="chosen")
    return {"prompt": prompt, "chosen": chosen[shared:], "rejected": rejected[shared:]}
