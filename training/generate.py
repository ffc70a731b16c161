"""The generate stage: K sampled responses per prompt from each of one or more checkpoints, written
to `generations.jsonl` for the feedback campaigns. `setup` reads the prompts, `fit` generates (the
shape of every stage: training/stages.py).

Sampling is batched with `model.generate`, yet every response has its own seed (training/sampling.py:
`SeededSampler`); replies stop where training/sampling.py's `stop_token_ids` says.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from training.base_model import load_base_model, load_base_tokenizer
from training.events import Reporter
from training.generate_config import GenerateConfig
from training.prompts import Prompt, read_prompts, typed_prompts
from training.runtime import pick_device
from training.sampling import SeededSampler, response_seed, stop_token_ids
from training.stage_shape import setup_then_fit

OUTPUT_FILE = "generations.jsonl"
SAMPLE_EVENTS_PER_MODEL = 3


@dataclass
class Progress:
    """Prompts done (over all models) and tokens generated so far."""

    total: int
    step: int = 0
    tokens: int = 0


@dataclass
class GenerateRun:
    """What `setup` found: the prompts, the device, and the progress over all models."""

    cfg: GenerateConfig
    reporter: Reporter
    device: torch.device
    prompts: list[Prompt]
    progress: Progress


def run_generate(cfg: GenerateConfig, reporter: Reporter) -> Path | None:
    """Write `output_dir/generations.jsonl` and return it; None when stopped (nothing is kept)."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: GenerateConfig, reporter: Reporter) -> GenerateRun:
    hf_logging.disable_progress_bar()
    device = pick_device(cfg.device)
    if cfg.prompts_path is not None:
        prompts = read_prompts(cfg.prompts_path, cfg.prompts_format, cfg.max_prompts)
    else:
        prompts = typed_prompts(cfg.prompts[: cfg.max_prompts])
    progress = Progress(total=len(prompts) * len(cfg.models))
    reporter.status(
        "running",
        total_steps=progress.total,
        step=0,
        summary={
            "prompts": len(prompts),
            "models": [m["label"] for m in cfg.models],
            "samples_per_prompt": cfg.samples_per_prompt,
            "responses": progress.total * cfg.samples_per_prompt,
            "device": device.type,
        },
    )
    return GenerateRun(cfg, reporter, device, prompts, progress)


def fit(run: GenerateRun) -> Path | None:
    """Every model's responses into one file, which appears whole or not at all."""
    cfg, reporter, progress = run.cfg, run.reporter, run.progress
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / OUTPUT_FILE
    partial = out / f".{OUTPUT_FILE}.tmp-{os.getpid()}"
    started = time.perf_counter()
    try:
        with partial.open("w", encoding="utf-8") as f:
            finished = all(
                generate_with_model(cfg, i, run.prompts, run.device, f, reporter, progress)
                for i in range(len(cfg.models))
            )
        if finished:
            os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    summary = {"prompts_done": progress.step, "generated_tokens": progress.tokens,
               "seconds": round(time.perf_counter() - started, 3)}
    if not finished:
        reporter.log(f"stop requested: stopped after {progress.step} of {progress.total} prompts; nothing kept")
        reporter.status("cancelled", step=progress.step, summary=summary)
        return None
    reporter.artifact("generations", str(final.resolve()), output_metadata(run))
    reporter.status("succeeded", step=progress.step, summary=summary)
    return final


def output_metadata(run: GenerateRun) -> dict[str, Any]:
    cfg = run.cfg
    return {
        "prompts": len(run.prompts),
        "models": [{"label": m["label"], "artifact": m["artifact"], "path": m["path"]} for m in cfg.models],
        "samples_per_prompt": cfg.samples_per_prompt,
        "responses": run.progress.total * cfg.samples_per_prompt,
        "settings": {
            "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k,
            "max_new_tokens": cfg.max_new_tokens, "seed": cfg.seed,
            "use_chat_template": cfg.use_chat_template,
        },
    }


def generate_with_model(
    cfg: GenerateConfig,
    index: int,
    prompts: list[Prompt],
    device: torch.device,
    out: IO[str],
    reporter: Reporter,
    progress: Progress,
) -> bool:
    """Write the model's responses to `out`, batch by batch; False when a stop was requested."""
    spec = cfg.models[index]
    where = f"models[{index}].path"
    tokenizer = load_base_tokenizer(spec["path"], field=where)
    model, info = load_base_model(
        spec["path"], AutoModelForCausalLM, field=where,
        dtype=torch.float32 if device.type == "cpu" else "auto",
    )
    model.to(device).eval()
    tokenizer.padding_side = "left"  # new tokens follow every prompt directly
    tokenizer.truncation_side = "left"  # a long prompt keeps its end, where the question is
    chat = cfg.use_chat_template and bool(tokenizer.chat_template)
    inputs = [model_input(tokenizer, p, chat) for p in prompts]
    room = (info.context_length or tokenizer.model_max_length) - cfg.max_new_tokens
    generation = GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, do_sample=False, num_beams=1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_token_ids(tokenizer, model.generation_config.eos_token_id, chat),
    )
    reporter.log(
        f"generating with {spec['label']} ({Path(spec['path']).name}), "
        f"{'its chat template' if chat else 'raw prompts'}"
    )

    rows = [(p, s) for p in range(len(prompts)) for s in range(cfg.samples_per_prompt)]
    prompts_before = progress.step
    for start in range(0, len(rows), cfg.batch_size):
        if reporter.should_stop():
            return False
        batch = rows[start : start + cfg.batch_size]
        began = time.perf_counter()
        encoded = tokenizer(
            [inputs[p] for p, _ in batch], padding=True, truncation=True, max_length=room,
            add_special_tokens=not chat,  # a chat template writes its own special tokens
            return_tensors="pt",
        ).to(device)
        seeds = [response_seed(cfg.seed, spec["label"], p, s) for p, s in batch]
        processors = LogitsProcessorList([SeededSampler(cfg.temperature, cfg.top_k, cfg.top_p, seeds)])
        with torch.inference_mode():
            output = model.generate(**encoded, generation_config=generation, logits_processor=processors)
        new = output[:, encoded["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        tokens = int((new != tokenizer.pad_token_id).sum())  # sync point, once per batch
        for (p, s), text in zip(batch, texts, strict=True):
            record = {"prompt_index": p, "prompt": prompts[p].text, "model": spec["label"],
                      "artifact": spec["artifact"], "sample": s, "text": text}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        progress.tokens += tokens
        progress.step = prompts_before + (start + len(batch)) // cfg.samples_per_prompt
        reporter.metric(progress.step, {
            "progress": progress.step / progress.total,
            "tokens_per_s": tokens / max(time.perf_counter() - began, 1e-9),
            "tokens": progress.tokens,
        })
        for row in range(start, min(start + len(batch), SAMPLE_EVENTS_PER_MODEL)):
            reporter.sample(progress.step, inputs[rows[row][0]], texts[row - start])
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return True


def model_input(tokenizer: PreTrainedTokenizerBase, prompt: Prompt, chat: bool) -> str:
    """The text the model reads: the conversation through its chat template, opening an assistant
    turn, or the prompt's plain text."""
    if not chat:
        return prompt.text
    return tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
