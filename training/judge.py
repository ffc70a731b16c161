"""The judge stage: which response of each pair is better, decided by a model instead of a person.
`setup` reads the pairs and loads the judge, `fit` judges them (the shape of every stage:
training/stages.py).

Two judges:
- `rubric`: a checkpoint reads the guidelines, the prompt and both responses, and is asked "Which
  response is better, A or B?". Its answer is its next-token probability of A against B. It is
  asked in both orders (a shown first as A, then b shown first as A), because a model's answer
  leans toward a position; the pair's label is the response preferred in both orders, and a tie
  when the orders disagree (the judge followed the position, not the responses), as MT-Bench
  counts a swapped pair. Both raw answers are kept, so the judge's position bias can be measured.
- `reward`: a reward model (training/reward.py) scores each response after the prompt; the higher
  score wins, equal scores tie. A response is scored alone, so no order is shown.

Either way the label does not depend on which response came first in the file: judging (a, b) and
(b, a) picks the same response. Each line of `judgements.jsonl`, in the pairs' order:
    {"item": id, "label": "a" | "b" | "tie", "answers": {...}}
with answers, for rubric, {"orders": [{"first": "a", "p_first": P(A)/(P(A)+P(B)), "letters": P(A)+P(B),
"choice": "a"|"b"|"tie"}, {"first": "b", ...}], "p_a": mean probability that a is better}; for
reward {"score_a", "score_b"}.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from training import json_limits
from training.base_model import load_base_model, load_base_tokenizer
from training.config import ConfigError
from training.events import Reporter
from training.judge_config import JUDGEMENTS_FILE, PAIR_KEYS, JudgeConfig
from training.runtime import pick_device

QUESTION = """{guidelines}

[Question]
{prompt}

[Response A]
{first}

[Response B]
{second}

Which response is better, A or B? Answer with one letter."""
DEFAULT_GUIDELINES = "Two responses to the same question follow. Judge which one answers it better."
RAW_ANSWER = "\nAnswer:"
"""Ends the question of a model without a chat template; its answer follows as " A" or " B"."""


@dataclass
class JudgeRun:
    """What `setup` found: the pairs, and the judge ready to answer."""

    cfg: JudgeConfig
    reporter: Reporter
    pairs: list[dict]
    judge: Any
    """A `RubricJudge`, or a reward scorer (training/reward.py)."""


def setup(cfg: JudgeConfig, reporter: Reporter) -> JudgeRun:
    hf_logging.disable_progress_bar()
    pairs = read_pairs(cfg.pairs_file)
    device = pick_device(cfg.device)
    if cfg.method == "reward":
        from training.reward import load_reward_scorer

        judge = load_reward_scorer(cfg.model_path, device=str(device))
    else:
        judge = RubricJudge(cfg, device)
    reporter.status("running", total_steps=len(pairs), step=0,
                    summary={"pairs": len(pairs), "method": cfg.method, "device": device.type})
    return JudgeRun(cfg, reporter, pairs, judge)


def fit(run: JudgeRun) -> Path | None:
    """Every pair's judgement into one file, which appears whole or not at all."""
    cfg, reporter = run.cfg, run.reporter
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / JUDGEMENTS_FILE
    partial = out / f".{JUDGEMENTS_FILE}.tmp-{os.getpid()}"
    started = time.perf_counter()
    judgements: list[dict] = []
    per_batch = max(1, cfg.batch_size // 2)  # two questions (rubric) or two responses (reward) a pair
    try:
        for start in range(0, len(run.pairs), per_batch):
            if reporter.should_stop():
                reporter.log(f"stop requested: stopped after {len(judgements)} of {len(run.pairs)} pairs; nothing kept")
                reporter.status("cancelled", step=len(judgements))
                return None
            batch = run.pairs[start : start + per_batch]
            began = time.perf_counter()
            judgements += judge_pairs(run, batch)
            reporter.metric(len(judgements), {"progress": len(judgements) / len(run.pairs),
                                              "pairs_per_s": len(batch) / max(time.perf_counter() - began, 1e-9)})
        partial.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in judgements), encoding="utf-8")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    if isinstance(run.judge, RubricJudge) and run.judge.truncated:
        reporter.log(f"{run.judge.truncated} questions were longer than max_length ({cfg.max_length} tokens): "
                     "the judge read their ends only", level="warning")
    metadata = summary(cfg, judgements) | {"seconds": round(time.perf_counter() - started, 3)}
    reporter.artifact("judgements", str(final.resolve()), metadata)
    reporter.status("succeeded", step=len(judgements), summary=metadata)
    return final


def judge_pairs(run: JudgeRun, pairs: list[dict]) -> list[dict]:
    if run.cfg.method == "reward":
        prompts = [p["prompt"] for p in pairs]
        scores = run.judge.score(prompts * 2, [p["response_a"] for p in pairs] + [p["response_b"] for p in pairs],
                                 batch_size=run.cfg.batch_size)
        return [reward_judgement(p["item"], a, b) for p, a, b in zip(pairs, scores[: len(pairs)], scores[len(pairs) :], strict=True)]
    return run.judge.judge(pairs)


def reward_judgement(item: int, score_a: float, score_b: float) -> dict:
    label = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
    return {"item": item, "label": label, "answers": {"score_a": score_a, "score_b": score_b}}


def rubric_judgement(item: int, p_first_ab: float, p_first_ba: float, letters: tuple[float, float]) -> dict:
    """The label of a pair from the judge's two answers: p_first_ab, the probability that the first
    shown is better with a shown first; p_first_ba, with b shown first."""
    orders = [{"first": "a", "p_first": p_first_ab, "letters": letters[0], "choice": _choice(p_first_ab, "a", "b")},
              {"first": "b", "p_first": p_first_ba, "letters": letters[1], "choice": _choice(p_first_ba, "b", "a")}]
    choices = {o["choice"] for o in orders}
    label = choices.pop() if len(choices) == 1 else "tie"
    return {"item": item, "label": label, "answers": {"orders": orders, "p_a": (p_first_ab + 1 - p_first_ba) / 2}}


def _choice(p_first: float, first: str, second: str) -> str:
    return first if p_first > 0.5 else second if p_first < 0.5 else "tie"


def summary(cfg: JudgeConfig, judgements: list[dict]) -> dict[str, Any]:
    """The labels given, and for a rubric judge how often it preferred the response shown first and
    how often its two orders agreed."""
    facts: dict[str, Any] = {"method": cfg.method, "pairs": len(judgements),
                             "labels": dict(Counter(j["label"] for j in judgements))}
    if cfg.method == "rubric" and judgements:
        answers = [o for j in judgements for o in j["answers"]["orders"] if o["choice"] != "tie"]
        facts["first_preferred"] = sum(o["choice"] == o["first"] for o in answers) / len(answers) if answers else None
        facts["orders_agree"] = sum(j["label"] != "tie" for j in judgements) / len(judgements)
    return facts


class RubricJudge:
    """A causal LM asked which response is better, A or B, read from its next-token probabilities."""

    def __init__(self, cfg: JudgeConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.tokenizer = load_base_tokenizer(cfg.model_path, field="model_path")
        self.model, _ = load_base_model(cfg.model_path, AutoModelForCausalLM, field="model_path",
                                        dtype=torch.float32 if device.type == "cpu" else "auto")
        self.model.to(device).eval()
        self.chat = bool(self.tokenizer.chat_template)
        self.answer_prefix, self.letter_ids = answer_tokens(self.tokenizer, self.chat)
        self.guidelines = cfg.guidelines.strip() or DEFAULT_GUIDELINES
        self.truncated = 0

    def question_ids(self, prompt: str, first: str, second: str) -> list[int]:
        text = QUESTION.format(guidelines=self.guidelines, prompt=prompt, first=first, second=second)
        if self.chat:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                      add_generation_prompt=True)
        else:
            text += RAW_ANSWER
        ids = self.tokenizer(text, add_special_tokens=not self.chat)["input_ids"] + self.answer_prefix
        if len(ids) > self.cfg.max_length:
            self.truncated += 1
            ids = ids[-self.cfg.max_length :]
        return ids

    def judge(self, pairs: list[dict]) -> list[dict]:
        questions = [self.question_ids(p["prompt"], p["response_a"], p["response_b"]) for p in pairs]
        questions += [self.question_ids(p["prompt"], p["response_b"], p["response_a"]) for p in pairs]
        p_first, letters = self.answer(questions)
        n = len(pairs)
        return [rubric_judgement(p["item"], p_first[k], p_first[n + k], (letters[k], letters[n + k]))
                for k, p in enumerate(pairs)]

    @torch.inference_mode()
    def answer(self, questions: list[list[int]]) -> tuple[list[float], list[float]]:
        """Per question: P(A) / (P(A) + P(B)) of the next token, and P(A) + P(B)."""
        width = max(len(q) for q in questions)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(q)) + q for q in questions], device=self.device)
        mask = torch.tensor([[0] * (width - len(q)) + [1] * len(q) for q in questions], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: each question starts at position 0
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :].float()
        letters = torch.log_softmax(logits, dim=-1)[:, self.letter_ids]
        p_first = torch.sigmoid(letters[:, 0] - letters[:, 1])
        return p_first.tolist(), letters.exp().sum(-1).tolist()


def answer_tokens(tokenizer: PreTrainedTokenizerBase, chat: bool) -> tuple[list[int], list[int]]:
    """(prefix, [id of A, id of B]): the tokens both answers begin with, which the question ends
    with, and the one token each answer then takes. A chat model answers "A" in its own turn; a raw
    text model " A" after "Answer:"."""
    a, b = (tokenizer(("" if chat else " ") + letter, add_special_tokens=False)["input_ids"] for letter in "AB")
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    if len(a) != shared + 1 or len(b) != shared + 1:
        raise ConfigError("model_path", "the judge's tokenizer does not write the answers A and B as one token each")
    return a[:shared], [a[shared], b[shared]]


def read_pairs(path: Path) -> list[dict]:
    """The pairs of the file; a ConfigError on `pairs_path` names the first bad line and why."""
    if not path.is_file():
        raise ConfigError("pairs_path", f"no such file: {path}")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                pairs.append(_pair(line, f"{path.name}, line {number}"))
    if not pairs:
        raise ConfigError("pairs_path", f"{path.name} holds no pairs")
    return pairs


def _pair(line: str, where: str) -> dict:
    try:
        record = json_limits.loads(line)
    except ValueError as e:
        raise ConfigError("pairs_path", f"{where}: not valid JSON ({e})") from None
    if not isinstance(record, dict):
        raise ConfigError("pairs_path", f"{where}: must be a JSON object")
    missing = [key for key in PAIR_KEYS if key not in record]
    if missing:
        raise ConfigError("pairs_path", f"{where}: has no {', '.join(missing)}")
    if not isinstance(record["item"], int) or isinstance(record["item"], bool):
        raise ConfigError("pairs_path", f"{where}: item must be a whole number")
    for key in PAIR_KEYS[1:]:
        if not isinstance(record[key], str):
            raise ConfigError("pairs_path", f"{where}: {key} must be a string")
    return {key: record[key] for key in PAIR_KEYS}
