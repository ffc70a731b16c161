"""The RL stage's rewards: what a cell's form picks (a list of `{"kind", "weight", ...params}`),
checked field by field without torch, and the reward functions trl's GRPOTrainer calls.

Kinds:
- `exact_match`: 1 when the answer extracted from the completion (`extract`: `gsm8k`,
  `last_number` or a regular expression; training/answers.py) is the prompt's reference answer
  (an eval dataset's `answer`, its GSM8K `#### 42` read the same way), else 0.
- `regex`: 1 when the regular expression `pattern` matches somewhere in the completion (anchor it
  with `\\A`/`\\Z` for the whole: Python's `$` also matches just before a final newline), else 0.
- `length`: 1 at `target` completion tokens, falling linearly to 0 at 0 and at twice the target.
- `format`: 1 when the completion has the `format` (FORMATS), else 0.
- `reward_model`: the score of the lab reward model the cell names (`reward_model` in the config).

Each function carries a name (`exact_match`, `regex_2` for a second regex, …), so trl logs
`rewards/<name>/mean` for each and the lab streams them apart. trl sums them, weighted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from training.answers import GSM8K, answers_match, compile_pattern, extract_answer
from training.config_checks import ConfigError

MAX_REWARDS = 8
MAX_WEIGHT = 1000.0
MAX_TARGET_TOKENS = 1_048_576
MAX_COMPLETION_CHARS_FOR_JSON = 100_000
FORMATS = {
    "gsm8k": re.compile(r"####\s*[-\u2212]?[\d,]*\d(?:\.\d+)?\s*$"),
    "think_answer": re.compile(r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$", re.DOTALL),
    "boxed": re.compile(r"\\boxed\{[^{}]+\}"),
    "json": None,
}
"""`gsm8k`: ends with `#### <number>`. `think_answer`: `<think>…</think>` then `<answer>…</answer>`
and nothing else (DeepSeek-R1's format). `boxed`: holds a LaTeX `\\boxed{…}`. `json`: is one JSON
object or array."""
REWARD_MODEL = "reward_model"


@dataclass(frozen=True)
class Param:
    type: type
    default: Any = None
    """None: required."""
    doc: str = ""


KINDS: dict[str, dict[str, Param]] = {
    "exact_match": {"extract": Param(str, "last_number", "gsm8k, last_number or a regular expression")},
    "regex": {"pattern": Param(str, None, "a regular expression the completion matches (\\A and \\Z anchor the whole of it)")},
    "length": {"target": Param(int, None, "the completion length, in tokens, that scores 1")},
    "format": {"format": Param(str, None, ", ".join(FORMATS))},
    REWARD_MODEL: {},
}
"""Each kind's own parameters, beside `kind` and `weight`."""


@dataclass(frozen=True)
class RewardSpec:
    kind: str
    weight: float
    name: str
    params: dict[str, Any] = field(default_factory=dict)


def parse_rewards(value: Any, field_name: str = "rewards") -> list[RewardSpec]:
    """The reward specs of a config's `rewards`, each field checked: an error names it, as in
    `rewards[1].pattern`. No torch, no files: the web checks a form with it."""
    if not isinstance(value, list):
        raise ConfigError(field_name, f"must be a list of rewards, not {type(value).__name__}")
    if not value:
        raise ConfigError(field_name, "must name at least one reward")
    if len(value) > MAX_REWARDS:
        raise ConfigError(field_name, f"holds {len(value)} rewards; at most {MAX_REWARDS}")
    specs = [_parse_one(entry, f"{field_name}[{i}]") for i, entry in enumerate(value)]
    counts: dict[str, int] = {}
    named = []
    for spec in specs:
        counts[spec.kind] = counts.get(spec.kind, 0) + 1
        name = spec.kind if counts[spec.kind] == 1 else f"{spec.kind}_{counts[spec.kind]}"
        named.append(RewardSpec(spec.kind, spec.weight, name, spec.params))
    return named


def _parse_one(entry: Any, where: str) -> RewardSpec:
    if not isinstance(entry, dict):
        raise ConfigError(where, f'must be an object like {{"kind": "regex", "weight": 1.0, ...}}, not {type(entry).__name__}')
    kind = entry.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        shown = repr(kind)[:60] if isinstance(kind, str) else type(kind).__name__
        raise ConfigError(f"{where}.kind", f"must be one of {', '.join(KINDS)}, not {shown}")
    params = KINDS[kind]
    for key in entry:
        if key not in ("kind", "weight", *params):
            known = ", ".join(["kind", "weight", *params])
            raise ConfigError(f"{where}.{str(key)[:60]}", f"is not a field of a {kind} reward (known: {known})")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ConfigError(f"{where}.weight", f"must be a finite number, not {_shown(weight)}")
    if abs(weight) > MAX_WEIGHT:
        raise ConfigError(f"{where}.weight", f"must be between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}: rewards are "
                                             f"normalised per group, so only the weights' ratios matter")
    values = {}
    for name, param in params.items():
        value = entry.get(name, param.default)
        if value is None:
            raise ConfigError(f"{where}.{name}", f"is required ({param.doc})")
        if isinstance(value, bool) or not isinstance(value, param.type):
            kind_name = {str: "a string", int: "an integer"}[param.type]
            raise ConfigError(f"{where}.{name}", f"must be {kind_name}, not {_shown(value)}")
        values[name] = value
    _check_params(kind, values, where)
    return RewardSpec(kind, float(weight), kind, values)


def _check_params(kind: str, params: dict[str, Any], where: str) -> None:
    pattern = params.get("pattern") if kind == "regex" else params.get("extract")
    if pattern is not None and pattern not in ("gsm8k", "last_number"):
        try:
            compile_pattern(pattern)
        except ValueError as e:
            raise ConfigError(f"{where}.{'pattern' if kind == 'regex' else 'extract'}", str(e)) from None
    if kind == "length" and not 1 <= params["target"] <= MAX_TARGET_TOKENS:
        raise ConfigError(f"{where}.target", f"must be between 1 and {MAX_TARGET_TOKENS} tokens, not {_shown(params['target'])}")
    if kind == "format" and params["format"] not in FORMATS:
        raise ConfigError(f"{where}.format", f"must be one of {', '.join(FORMATS)}, not {_shown(params['format'])}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# The reward functions. trl calls each with the batch's prompts and completions (strings, or message
# lists when the prompts are conversations), the completions' token ids and every dataset column as a
# keyword (here `reference`); it wants one float (or None: no opinion) per completion.

RewardFunction = Callable[..., list[float | None]]


def completion_text(completion: str | list[dict[str, str]]) -> str:
    """A completion's text: the string, or the content of a conversation's last message."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


def reference_answer(reference: str) -> str | None:
    """The answer a reference states: GSM8K's full solution gives the number after `####`; a short
    answer is itself."""
    return extract_answer(reference, GSM8K) if "####" in reference else reference


class RuleReward:
    """One rule reward: a callable with the `__name__` trl logs it by."""

    def __init__(self, spec: RewardSpec) -> None:
        self.__name__ = spec.name
        self.spec = spec
        self.score: Callable[[str, list[int], str | None], float | None] = getattr(self, f"_{spec.kind}")

    def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]],
                 reference: Sequence[str | None] | None = None, **kwargs: Any) -> list[float | None]:
        references = reference if reference is not None else [None] * len(completions)
        return [self.score(completion_text(c), ids, ref)
                for c, ids, ref in zip(completions, completion_ids, references, strict=True)]

    def _exact_match(self, text: str, ids: list[int], reference: str | None) -> float | None:
        if reference is None:
            return None  # a prompt without a reference: no opinion, not a wrong answer
        predicted = extract_answer(text, self.spec.params["extract"])
        return float(answers_match(predicted, reference_answer(reference)))

    def _regex(self, text: str, ids: list[int], reference: str | None) -> float:
        return float(compile_pattern(self.spec.params["pattern"]).search(text) is not None)

    def _length(self, text: str, ids: list[int], reference: str | None) -> float:
        target = self.spec.params["target"]
        return max(0.0, 1.0 - abs(len(ids) - target) / target)

    def _format(self, text: str, ids: list[int], reference: str | None) -> float:
        fmt = self.spec.params["format"]
        if fmt == "json":
            return float(_is_json_document(text))
        return float(FORMATS[fmt].search(text) is not None)


def _is_json_document(text: str) -> bool:
    if len(text) > MAX_COMPLETION_CHARS_FOR_JSON:
        return False
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, (dict, list))


class ModelReward:
    """The score a lab reward model gives each prompt + completion (training/reward.py's scorer:
    the reward model's own chat template renders them)."""

    def __init__(self, spec: RewardSpec, scorer: Any, batch_size: int) -> None:
        self.__name__ = spec.name
        self.scorer = scorer
        self.batch_size = batch_size

    def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]],
                 **kwargs: Any) -> list[float | None]:
        responses = [completion_text(c) for c in completions]
        return list(self.scorer.score(prompts, responses, batch_size=self.batch_size))


def reward_functions(specs: list[RewardSpec], scorer: Any = None, batch_size: int = 8) -> list[RewardFunction]:
    """The callables for trl, in the specs' order (their weights go to GRPOConfig.reward_weights)."""
    return [ModelReward(s, scorer, batch_size) if s.kind == REWARD_MODEL else RuleReward(s) for s in specs]
