"""The evaluate stage: one or more checkpoints scored on one dataset, every example's result kept.
`setup` reads the examples, `fit` scores each model in turn (the shape of every stage:
training/stages.py). The tasks, by the dataset's kind (training/evaluate_config.py):

- **perplexity** (text): exp(total negative log-likelihood / tokens scored), weighted by tokens, not
  by windows or documents. Every token of a document but its first is scored exactly once. A document
  longer than the context is cut into windows of at most `context_length` positions, each scoring
  the next `stride` tokens: with the default stride (= context_length) these are chunks, each token
  seeing only its own chunk before it (lm-evaluation-harness's rolling windows); a smaller stride
  slides the window, so a token sees at least context_length - stride tokens before it.
- **multiple choice** (eval with choices): each choice is scored as the log-likelihood of `" " +
  choice` (or `" A"` … in the letters style) after the prompt, as lm-evaluation-harness does:
  `acc` takes the choice of highest log-likelihood, `acc_norm` divides it by the choice's length in
  characters (lm-eval's acc_norm), `acc_bytes` by its UTF-8 bytes. Per subject as well.
- **generation** (eval without choices): greedy or sampled responses, the answer read from them by
  training/answers.py; `exact_match` is the share of responses right, `pass@k` (k = samples) the
  unbiased estimate of a question solved by at least one of k responses.
- **classification** (classification, a classifier checkpoint): accuracy, macro-F1, per class.

Each metric comes with a 95% interval (training/intervals.py): Wilson for proportions, a bootstrap
over examples for the rest. `results.jsonl` holds one line per model and example, written under a
temporary name and renamed when every model is done: a stop keeps nothing.

`evaluate_checkpoint(model_dir, cfg)` scores one checkpoint with the same code, for evaluation during
training.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GenerationConfig, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from training.answers import GSM8K, answers_match, extract_answer, normalize_answer
from training.base_model import load_base_model, load_base_tokenizer
from training.config_checks import ConfigError
from training.dataset_files import reader_name
from training.datasets import DatasetError
from training.datasets.records import Scan
from training.evaluate_config import CLASSIFICATION, GENERATION, MULTIPLE_CHOICE, PERPLEXITY, EvaluateConfig
from training.events import Reporter
from training.intervals import bootstrapped, proportion
from training.metrics import classification_report
from training.predict import classify_texts
from training.runtime import pick_device, resolve_precision
from training.sampling import SeededSampler, response_seed, stop_token_ids
from training.stage_shape import setup_then_fit

if TYPE_CHECKING:
    from training.reward import RewardScorer

RESULTS_FILE = "results.jsonl"
STOP_STRINGS = ("Question:",)
"""Where a generated answer ends in the few-shot prompt: the next question the model invents."""
FEWSHOT_POOL = 5_000
"""Examples read beyond `max_examples` for few-shot prompts to draw from."""
KIND_OF_TASK = {PERPLEXITY: "text", MULTIPLE_CHOICE: "eval", GENERATION: "eval", CLASSIFICATION: "classification"}


class Stopped(Exception):
    """A stop was asked for between two batches."""


@dataclass
class Example:
    record: dict[str, Any]
    """The canonical record (training/datasets/kinds.py)."""
    subject: str | None = None
    """The raw record's `subject`, when it has one (MMLU)."""


@dataclass
class Progress:
    """Examples done over all models; reports each batch and raises Stopped when asked to stop."""

    total: int
    reporter: Reporter | None = None
    events: bool = True
    step: int = 0
    started: float = field(default_factory=time.perf_counter)

    def check(self) -> None:
        if self.reporter is not None and self.reporter.should_stop():
            raise Stopped

    def to(self, step: int) -> None:
        self.step = step
        if self.reporter is not None and self.events:
            elapsed = max(time.perf_counter() - self.started, 1e-9)
            self.reporter.metric(step, {"progress": step / self.total, "examples_per_s": step / elapsed})


@dataclass
class Scored:
    """One model's results: metrics (name → value, low, high, n, interval), extras (per subject, per
    class) and the per-example rows."""

    metrics: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateRun:
    cfg: EvaluateConfig
    reporter: Reporter | None
    device: torch.device
    precision: str
    examples: list[Example]
    pool: list[Example]
    """Every example read (the few-shot examples come from here)."""
    progress: Progress
    scorer: RewardScorer | None = None
    """The reward model (generation with `reward_model`), loaded once for every model's answers."""


def run_evaluate(cfg: EvaluateConfig, reporter: Reporter) -> Path | None:
    """Write `output_dir/results.jsonl` and return it; None when stopped (nothing is kept)."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: EvaluateConfig, reporter: Reporter) -> EvaluateRun:
    hf_logging.disable_progress_bar()
    if not cfg.models:
        raise ConfigError("models", "needs at least one checkpoint")
    if not cfg.output_dir:
        raise ConfigError("output_dir", "must not be empty")
    device = pick_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    pool = read_examples(cfg)
    examples = pool[: cfg.max_examples]
    progress = Progress(total=len(examples) * len(cfg.models), reporter=reporter)
    reporter.status("running", total_steps=progress.total, step=0, summary={
        "task": cfg.task, "examples": len(examples), "models": [m["label"] for m in cfg.models],
        "num_fewshot": cfg.num_fewshot, "device": device.type, "precision": precision,
    })
    return EvaluateRun(cfg, reporter, device, precision, examples, pool, progress, reward_scorer(cfg, device))


def fit(run: EvaluateRun) -> Path | None:
    """Every model's results into one file, which appears whole or not at all."""
    cfg, reporter, progress = run.cfg, run.reporter, run.progress
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / RESULTS_FILE
    partial = out / f".{RESULTS_FILE}.tmp-{os.getpid()}"
    results: list[dict[str, Any]] = []
    rewards: dict[str, np.ndarray] = {}
    try:
        with partial.open("w", encoding="utf-8") as f:
            for i, spec in enumerate(cfg.models):
                reporter.log(f"evaluating {spec['label']} ({Path(spec['path']).name}) on {len(run.examples)} examples: {cfg.task}")
                scored = score_model(spec["path"], f"models[{i}].path", spec["label"], run, base=i * len(run.examples))
                write_rows(f, scored.rows, spec)
                if run.scorer is not None:
                    rewards[spec["label"]] = np.array([r["reward"] for r in scored.rows])
                results.append({"label": spec["label"], "artifact": spec["artifact"], "path": spec["path"],
                                "metrics": scored.metrics, **scored.extras})
                reporter.log(f"{spec['label']}: " + ", ".join(f"{k} {m['value']:.4g}" for k, m in scored.metrics.items()))
        if rewards:
            add_win_rates(results, rewards, cfg.baseline or cfg.models[0]["label"], cfg)
        os.replace(partial, final)
    except Stopped:
        reporter.log(f"stop requested: stopped after {progress.step} of {progress.total} examples; nothing kept")
        reporter.status("cancelled", step=progress.step)
        return None
    finally:
        partial.unlink(missing_ok=True)
    metadata = output_metadata(run, results)
    reporter.artifact("evaluation", str(final.resolve()), metadata)
    reporter.status("succeeded", step=progress.step, summary={
        "task": cfg.task, "metrics": {r["label"]: {k: m["value"] for k, m in r["metrics"].items()} for r in results},
        "seconds": round(time.perf_counter() - progress.started, 3),
    })
    return final


def output_metadata(run: EvaluateRun, results: list[dict[str, Any]]) -> dict[str, Any]:
    cfg = run.cfg
    settings = {"num_fewshot": cfg.num_fewshot, "max_examples": cfg.max_examples}
    if cfg.task == PERPLEXITY:
        settings |= {"context_length": cfg.context_length, "stride": cfg.stride}
    elif cfg.task == MULTIPLE_CHOICE:
        settings |= {"mc_style": cfg.mc_style}
    elif cfg.task == GENERATION:
        settings |= {"answer_extraction": cfg.answer_extraction, "samples": cfg.samples, "temperature": cfg.temperature,
                     "top_p": cfg.top_p, "top_k": cfg.top_k, "max_new_tokens": cfg.max_new_tokens,
                     "use_chat_template": cfg.use_chat_template, "seed": cfg.seed}
        if cfg.reward_model:
            settings |= {"reward_model": cfg.reward_model, "baseline": cfg.baseline or cfg.models[0]["label"]}
    return {"task": cfg.task, "dataset": Path(cfg.dataset_path).name, "examples": len(run.examples),
            "settings": settings, "models": results}


def write_rows(f: IO[str], rows: list[dict[str, Any]], spec: dict[str, Any]) -> None:
    for row in rows:
        f.write(json.dumps({"model": spec["label"], "artifact": spec["artifact"], **row}, ensure_ascii=False) + "\n")


# --- one checkpoint --------------------------------------------------------------------------------


def evaluate_checkpoint(model_dir: str | Path, cfg: EvaluateConfig, reporter: Reporter | None = None) -> dict[str, float]:
    """`cfg`'s task on the checkpoint in `model_dir` (its `models` and `output_dir` are not used):
    `{metric: value}`, such as `{"acc": 0.31, "acc_norm": 0.33}` or `{"perplexity": 41.2}`; nothing is
    written. `reporter` is only asked whether to stop (between batches): then `{}` comes back. Meant for
    evaluation during training, so it sends no progress events of its own."""
    device = pick_device(cfg.device)
    pool = read_examples(cfg)
    examples = pool[: cfg.max_examples]
    run = EvaluateRun(cfg, reporter, device, resolve_precision(cfg.precision, device), examples, pool,
                      Progress(total=len(examples), reporter=reporter, events=False), reward_scorer(cfg, device))
    try:
        scored = score_model(str(model_dir), "model", "checkpoint", run, base=0)
    except Stopped:
        return {}
    return {name: m["value"] for name, m in scored.metrics.items()}


def score_model(path: str, where: str, label: str, run: EvaluateRun, base: int) -> Scored:
    """Load the model once and score every example with it; `base` is the progress step it starts at."""
    cfg = run.cfg
    if cfg.task == CLASSIFICATION:
        return score_classification(path, run, base)
    tokenizer = load_base_tokenizer(path, field=where)
    model, info = load_base_model(path, AutoModelForCausalLM, field=where,
                                  dtype=torch.bfloat16 if run.precision == "bf16" else torch.float32)
    model.to(run.device).eval()
    context = cfg.context_length or info.context_length or tokenizer.model_max_length
    try:
        if cfg.task == PERPLEXITY:
            return score_perplexity(model, tokenizer, context, run, base)
        if cfg.task == MULTIPLE_CHOICE:
            return score_multiple_choice(model, tokenizer, context, run, base)
        return score_generation(model, tokenizer, context, label, run, base)
    finally:
        del model
        if run.device.type == "cuda":
            torch.cuda.empty_cache()


# --- reading the dataset ---------------------------------------------------------------------------


def read_examples(cfg: EvaluateConfig) -> list[Example]:
    """The file's canonical records (and a record's `subject`), at most `max_examples` plus what few-shot
    prompts draw from; the first bad record is a ConfigError on `dataset` naming its line."""
    if cfg.task not in KIND_OF_TASK:  # "auto" is resolved from the dataset, so there was none
        raise ConfigError("dataset_path", "must name the dataset to evaluate on")
    kind = KIND_OF_TASK[cfg.task]
    limit = cfg.max_examples + (FEWSHOT_POOL if cfg.num_fewshot else 0)
    examples = []
    try:
        for item in Scan(cfg.dataset_path, kind, name=reader_name(cfg.dataset_path, cfg.dataset_format)):
            if isinstance(item, DatasetError):
                raise item
            raw = item.raw.value
            subject = raw.get("subject") if isinstance(raw, dict) else None
            examples.append(Example(item.record, subject if isinstance(subject, str) and subject else None))
            if len(examples) >= limit:
                break
    except DatasetError as e:
        raise ConfigError("dataset", str(e)) from None
    if not examples:
        raise ConfigError("dataset", f"{Path(cfg.dataset_path).name} holds no examples")
    return examples


def fewshot_examples(pool: list[Example], index: int, k: int) -> list[Example]:
    """`k` solved examples for example `index`: the first others of its subject, then the first others."""
    if k == 0:
        return []
    subject = pool[index].subject
    same = [e for i, e in enumerate(pool) if i != index and e.subject == subject]
    rest = [e for i, e in enumerate(pool) if i != index and e.subject != subject]
    return (same + rest)[:k]


# --- log-likelihood of spans (perplexity and multiple choice) --------------------------------------


def score_spans(model: PreTrainedModel, device: torch.device, sequences: list[list[int]], starts: list[int],
                batch_size: int, pad_id: int, on_batch: Callable[[int], None]) -> np.ndarray:
    """Σ log p(token) over `sequence[start:]` given the tokens before it, for each sequence; the model
    reads `sequence[:-1]`. Batched longest first (less padding), right-padded; `on_batch(done)` after
    each batch with the number of sequences done."""
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    out = np.zeros(len(sequences), dtype=np.float64)
    for begin in range(0, len(order), batch_size):
        batch = order[begin : begin + batch_size]
        width = max(len(sequences[i]) - 1 for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            inputs = sequences[i][:-1]
            ids[row, : len(inputs)] = torch.tensor(inputs)
            mask[row, : len(inputs)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            sums = []
            for row, i in enumerate(batch):
                seq, start = sequences[i], starts[i]
                targets = torch.tensor(seq[start:], device=device)
                predicted = logits[row, start - 1 : len(seq) - 1].float()
                sums.append(-F.cross_entropy(predicted, targets, reduction="sum"))
            out[batch] = torch.stack(sums).cpu().numpy()  # sync point, once per batch
        on_batch(begin + len(batch))
    return out


def windows(n_tokens: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """`(a, s, e)` per window: the model reads tokens a..e-2 and scores tokens s..e-1 (each after the
    first exactly once). e - a - 1 ≤ context positions; s > a, so every scored token has context."""
    out, start = [], 1
    while start < n_tokens:
        end = min(start + stride, n_tokens)
        out.append((max(0, end - context - 1), start, end))
        start = end
    return out


def score_perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: int,
                     run: EvaluateRun, base: int) -> Scored:
    cfg, progress = run.cfg, run.progress
    stride = cfg.stride or context
    sequences, starts, owner = [], [], []
    documents = [tokenizer(e.record["text"], verbose=False)["input_ids"] for e in run.examples]
    for d, ids in enumerate(documents):
        for a, s, e in windows(len(ids), context, stride):
            sequences.append(ids[a:e])
            starts.append(s - a)
            owner.append(d)
    progress.check()
    logprobs = score_spans(model, run.device, sequences, starts, cfg.batch_size, tokenizer.pad_token_id,
                           _reporting(progress, base, len(run.examples), len(sequences)))
    nll = np.zeros(len(documents))
    np.add.at(nll, np.asarray(owner, dtype=np.int64), -logprobs)
    tokens = np.array([max(len(ids) - 1, 0) for ids in documents], dtype=np.float64)
    rows = [{"index": i, "prompt": e.record["text"][:500], "target": None, "answer": None, "correct": None,
             "tokens": int(tokens[i]), "nll": float(nll[i]),
             "perplexity": math.exp(nll[i] / tokens[i]) if tokens[i] else None}
            for i, e in enumerate(run.examples)]
    scored = tokens > 0
    if not scored.any():
        raise ConfigError("dataset", "no document has two tokens or more: nothing to score")
    per_doc = np.stack([nll[scored], tokens[scored]], axis=1)
    metrics = {
        "perplexity": bootstrapped(per_doc, _perplexity, samples=cfg.bootstrap_samples, seed=cfg.seed),
        "nll_per_token": bootstrapped(per_doc, _nll_per_token, samples=cfg.bootstrap_samples, seed=cfg.seed),
    }
    return Scored(metrics, rows, {"tokens": int(tokens.sum())})


def _nll_per_token(docs: np.ndarray) -> float:
    return float(docs[:, 0].sum() / docs[:, 1].sum())


def _perplexity(docs: np.ndarray) -> float:
    return math.exp(_nll_per_token(docs))


def _reporting(progress: Progress, base: int, n_examples: int, n_sequences: int) -> Callable[[int], None]:
    """An `on_batch` that reports the share of sequences done as examples done, then checks for a stop."""
    def on_batch(done: int) -> None:
        progress.to(base + n_examples * done // n_sequences)
        progress.check()
    return on_batch


# --- multiple choice -------------------------------------------------------------------------------


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def mc_prompt(example: Example, style: str, solved: bool = False) -> str:
    record = example.record
    if style == "letters":
        lines = [record["question"], *(f"{LETTERS[i]}. {c}" for i, c in enumerate(record["choices"])), "Answer:"]
        text = "\n".join(lines)
    else:
        text = f"Question: {record['question']}\nAnswer:"
    return text + (mc_continuations(example, style)[record["answer"]] if solved else "")


def mc_continuations(example: Example, style: str) -> list[str]:
    choices = example.record["choices"]
    return [f" {LETTERS[i]}" for i in range(len(choices))] if style == "letters" else [f" {c}" for c in choices]


def mc_context(pool: list[Example], index: int, k: int, style: str) -> str:
    example = pool[index]
    header = f"The following are multiple choice questions (with answers) about {example.subject.replace('_', ' ')}.\n\n" \
        if example.subject else ""
    shots = "".join(mc_prompt(e, style, solved=True) + "\n\n" for e in fewshot_examples(pool, index, k))
    return header + shots + mc_prompt(example, style)


def encode_pair(tokenizer: PreTrainedTokenizerBase, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: spaces that end the context move to the continuation; the whole text is
    encoded at once and the continuation is what follows the context's own tokens."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, verbose=False)["input_ids"]  # quiet: windows cut what is too long
    context_ids = tokenizer(context, verbose=False)["input_ids"]
    return whole[: len(context_ids)], whole[len(context_ids):]


def score_multiple_choice(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: int,
                          run: EvaluateRun, base: int) -> Scored:
    cfg, progress = run.cfg, run.progress
    sequences, starts, owner = [], [], []
    contexts = []
    for i, example in enumerate(run.examples):
        prompt = mc_context(run.pool, i, cfg.num_fewshot, cfg.mc_style)
        contexts.append(prompt)
        for continuation in mc_continuations(example, cfg.mc_style):
            ctx, cont = encode_pair(tokenizer, prompt, continuation)
            seq = (ctx + cont)[-(context + 1):]  # the question's start gives way, never the choice
            sequences.append(seq)
            starts.append(max(len(seq) - len(cont), 1))
            owner.append(i)
    progress.check()
    logliks = score_spans(model, run.device, sequences, starts, cfg.batch_size, tokenizer.pad_token_id,
                          _reporting(progress, base, len(run.examples), len(sequences)))
    rows, by_subject = [], defaultdict(list)
    position = 0
    for i, example in enumerate(run.examples):
        choices, answer = example.record["choices"], example.record["answer"]
        ll = logliks[position : position + len(choices)]
        position += len(choices)
        picks = mc_picks(ll, choices)
        row = {"index": i, "prompt": mc_prompt(example, cfg.mc_style), "target": choices[answer],
               "answer": choices[picks["acc"]], "correct": picks["acc"] == answer,
               "choices": choices, "logliks": [float(x) for x in ll],
               "correct_norm": picks["acc_norm"] == answer, "correct_bytes": picks["acc_bytes"] == answer}
        if example.subject:
            row["subject"] = example.subject
        rows.append(row)
        by_subject[example.subject].append(row)
    metrics = mc_metrics(rows)
    subjects = {s: mc_metrics(r) for s, r in sorted(by_subject.items()) if s is not None}
    return Scored(metrics, rows, {"subjects": subjects} if subjects else {})


def mc_picks(logliks: np.ndarray, choices: list[str]) -> dict[str, int]:
    """The index each metric picks: by log-likelihood, per character, per UTF-8 byte (first on a tie)."""
    chars = np.array([len(c) for c in choices], dtype=np.float64)
    utf8 = np.array([len(c.encode("utf-8")) for c in choices], dtype=np.float64)
    return {"acc": int(np.argmax(logliks)), "acc_norm": int(np.argmax(logliks / np.maximum(chars, 1))),
            "acc_bytes": int(np.argmax(logliks / np.maximum(utf8, 1)))}


def mc_metrics(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    n = len(rows)
    return {"acc": proportion(sum(r["correct"] for r in rows), n),
            "acc_norm": proportion(sum(r["correct_norm"] for r in rows), n),
            "acc_bytes": proportion(sum(r["correct_bytes"] for r in rows), n)}


# --- generation ------------------------------------------------------------------------------------


def gen_prompt(example: Example, solved: bool = False) -> str:
    return f"Question: {example.record['question']}\nAnswer:" + (f" {example.record['answer']}" if solved else "")


def reference_answer(answer: str, how: str) -> str | None:
    """The reference's answer: GSM8K's solution ends with `#### 42`; a bare answer is itself."""
    if "####" in answer:
        return extract_answer(answer, GSM8K)
    return normalize_answer(answer) if how in (GSM8K, "last_number") else extract_answer(answer, how) or answer.strip()


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of solving with k of n responses of which c are right (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def score_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, context: int, label: str,
                     run: EvaluateRun, base: int) -> Scored:
    cfg, progress = run.cfg, run.progress
    chat = cfg.use_chat_template and bool(tokenizer.chat_template)
    prompts = []
    for i, example in enumerate(run.examples):
        shots = fewshot_examples(run.pool, i, cfg.num_fewshot)
        if chat:
            messages = []
            for shot in shots:
                messages += [{"role": "user", "content": shot.record["question"]},
                             {"role": "assistant", "content": shot.record["answer"]}]
            messages.append({"role": "user", "content": example.record["question"]})
            prompts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        else:
            prompts.append("".join(gen_prompt(s, solved=True) + "\n\n" for s in shots) + gen_prompt(example))
    tokenizer.padding_side = "left"  # new tokens follow every prompt directly
    tokenizer.truncation_side = "left"  # a long prompt keeps its end, where the question is
    generation = GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_token_ids(tokenizer, model.generation_config.eos_token_id, chat),
        stop_strings=None if chat else list(STOP_STRINGS),
    )
    room = max(context - cfg.max_new_tokens, 1)
    jobs = [(i, s) for i in range(len(prompts)) for s in range(cfg.samples)]
    texts: dict[tuple[int, int], str] = {}
    for begin in range(0, len(jobs), cfg.batch_size):
        progress.check()
        batch = jobs[begin : begin + cfg.batch_size]
        encoded = tokenizer([prompts[i] for i, _ in batch], padding=True, truncation=True, max_length=room,
                            add_special_tokens=not chat, return_tensors="pt").to(run.device)
        seeds = [response_seed(cfg.seed, label, i, s) for i, s in batch]
        processors = LogitsProcessorList([SeededSampler(cfg.temperature, cfg.top_k, cfg.top_p, seeds)])
        with torch.inference_mode():
            output = model.generate(**encoded, generation_config=generation, logits_processor=processors,
                                    tokenizer=tokenizer)
        decoded = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        for job, text in zip(batch, decoded, strict=True):
            texts[job] = cut_at_stop(text)
        progress.to(base + len(prompts) * (begin + len(batch)) // len(jobs))
    rows = []
    for i, example in enumerate(run.examples):
        target = reference_answer(example.record["answer"], cfg.answer_extraction)
        samples = []
        for s in range(cfg.samples):
            answer = extract_answer(texts[i, s], cfg.answer_extraction)
            samples.append({"text": texts[i, s], "answer": answer, "correct": answers_match(answer, target)})
        rows.append({"index": i, "prompt": example.record["question"], "target": target,
                     "answer": samples[0]["answer"], "correct": samples[0]["correct"],
                     "right": sum(s["correct"] for s in samples), "samples": samples})
    metrics = generation_metrics(rows, cfg)
    if run.scorer is not None:
        progress.check()
        metrics["reward"] = score_rewards(run.scorer, rows, cfg)
    return Scored(metrics, rows)


def reward_scorer(cfg: EvaluateConfig, device: torch.device) -> RewardScorer | None:
    """The reward model, when one is given; trl (which training.reward imports) loads only then."""
    if cfg.reward_model is None:
        return None
    from training.reward import load_reward_scorer

    return load_reward_scorer(cfg.reward_model, device=device)


def score_rewards(scorer: RewardScorer, rows: list[dict[str, Any]], cfg: EvaluateConfig) -> dict[str, Any]:
    """Each response's reward (to its question, as a user message), a row's mean over its samples, and
    their mean over questions."""
    pairs = [(row["prompt"], sample) for row in rows for sample in row["samples"]]
    scores = iter(scorer.score([q for q, _ in pairs], [s["text"] for _, s in pairs], batch_size=cfg.batch_size))
    for row in rows:
        for sample in row["samples"]:
            sample["reward"] = next(scores)
        row["reward"] = float(np.mean([s["reward"] for s in row["samples"]]))
    return bootstrapped(np.array([r["reward"] for r in rows]), samples=cfg.bootstrap_samples, seed=cfg.seed)


def add_win_rates(results: list[dict[str, Any]], rewards: dict[str, np.ndarray], baseline: str, cfg: EvaluateConfig) -> None:
    """`win_rate` of each model against the baseline: the share of questions its answer out-rewards the
    baseline's, a tie counting half."""
    for result in results:
        if result["label"] != baseline:
            mine, theirs = rewards[result["label"]], rewards[baseline]
            wins = (mine > theirs) + 0.5 * (mine == theirs)
            result["metrics"]["win_rate"] = bootstrapped(wins, samples=cfg.bootstrap_samples, seed=cfg.seed)
            result["baseline"] = baseline


def cut_at_stop(text: str) -> str:
    for stop in STOP_STRINGS:
        text = text.split(stop, 1)[0]
    return text.strip()


def generation_metrics(rows: list[dict[str, Any]], cfg: EvaluateConfig) -> dict[str, dict[str, Any]]:
    n = cfg.samples
    if n == 1:
        return {"exact_match": proportion(sum(r["correct"] for r in rows), len(rows))}
    right = np.array([r["right"] for r in rows])
    metrics = {"exact_match": bootstrapped(right / n, samples=cfg.bootstrap_samples, seed=cfg.seed)}
    metrics[f"pass@{n}"] = proportion(int((right > 0).sum()), len(rows))
    return metrics


# --- classification --------------------------------------------------------------------------------


def score_classification(path: str, run: EvaluateRun, base: int) -> Scored:
    """A classifier checkpoint's predictions (training/predict.py: loaded once, on the CPU)."""
    cfg, progress = run.cfg, run.progress
    texts = [e.record["text"] for e in run.examples]
    predictions: list[dict[str, Any]] = []
    for begin in range(0, len(texts), cfg.batch_size):
        progress.check()
        predictions += classify_texts(path, texts[begin : begin + cfg.batch_size])
        progress.to(base + begin + len(texts[begin : begin + cfg.batch_size]))
    labels = list(predictions[0]["probabilities"])
    truth = [e.record["label"] for e in run.examples]
    unknown = sorted(set(truth) - set(labels))
    if unknown:
        raise ConfigError("dataset", f"labels {', '.join(map(repr, unknown[:5]))} are not among the model's "
                                     f"labels ({', '.join(labels)}): evaluate a classifier trained on these labels")
    report = classification_report([labels.index(t) for t in truth], [labels.index(p["label"]) for p in predictions], labels)
    rows = [{"index": i, "prompt": text[:500], "target": t, "answer": p["label"], "correct": p["label"] == t,
             "probabilities": p["probabilities"]} for i, (text, t, p) in enumerate(zip(texts, truth, predictions, strict=True))]
    ids = np.array([[labels.index(t), labels.index(p["label"])] for t, p in zip(truth, predictions, strict=True)])
    # Each resample of macro-F1 builds a report: 200 of them bound the time, at a coarser interval.
    metrics = {
        "accuracy": proportion(sum(r["correct"] for r in rows), len(rows)),
        "macro_f1": bootstrapped(ids, lambda a: classification_report(a[:, 0], a[:, 1], labels)["macro_f1"],
                                 samples=min(cfg.bootstrap_samples, 200), seed=cfg.seed),
    }
    return Scored(metrics, rows, {"per_class": report["per_class"], "confusion_matrix": report["confusion_matrix"],
                                  "labels": labels})
