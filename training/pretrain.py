"""The pretrain stage: a Llama-style decoder learns next-token prediction on a tokenized corpus.

Shape (litgpt's, as every stage: training/stages.py): `setup` prepares device, model, optimizer,
data and resume state; `fit` runs the loop. The loop talks only to a Reporter and syncs with the
device once per log interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedModel
from transformers.utils import logging as hf_logging

from training import distributed, presets
from training.base_model import load_base_model
from training.checkpoint import load_for_resume, save_checkpoint
from training.checkpoint_evals import CheckpointEvals
from training.checkpoint_layout import resolve_checkpoint
from training.config import ConfigError, require_file
from training.data import (
    BatchSampler,
    TokenBlocks,
    TokenFile,
    prepare_tokens,
    split_blocks,
    val_batch_indices,
)
from training.events import Reporter
from training.pretrain_config import PretrainConfig
from training.runtime import autocast_for, pick_device, resolve_precision, seed_everything
from training.sampling import sample_continuation
from training.stage_shape import setup_then_fit
from training.tokenizer import load_tokenizer

SAMPLE_TOP_K = 50
SAMPLE_TEMPERATURE = 0.8


@dataclass
class Setup:
    """Everything `setup` prepared for the loop."""

    cfg: PretrainConfig
    reporter: Reporter
    model: PreTrainedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    precision: str
    """`fp32` or `bf16` (autocast), as `resolve_precision` settled it."""
    blocks: TokenBlocks
    sampler: BatchSampler
    val_batches: list[np.ndarray]
    tokenizer: Tokenizer
    eos_id: int
    step: int = 0
    tokens_seen: int = 0
    last: dict[str, float] = field(default_factory=dict)
    """The latest reported metric values, for checkpoints and the final summary."""


def pretrain(cfg: PretrainConfig, reporter: Reporter) -> Path | None:
    """Train to `cfg.max_steps`; return the final checkpoint folder, or None when stopped early."""
    return setup_then_fit(setup, fit, cfg, reporter)


def setup(cfg: PretrainConfig, reporter: Reporter) -> Setup | None:
    """Device, model, optimizer, data and resume state, reported as running; None if stopped while
    the corpus was being tokenized."""
    hf_logging.disable_progress_bar()  # a bar on stderr at every save would drown real warnings
    require_file("corpus_path", cfg.corpus_path)
    require_file("tokenizer_path", cfg.tokenizer_path)
    distributed.check_batch(cfg.batch_size)
    device = distributed.start(pick_device(cfg.device))
    precision = resolve_precision(cfg.precision, device, bf16_on_cpu=True)
    seed_everything(cfg.seed)

    tokenizer, eos, pad = load_tokenizer(cfg.tokenizer_path)
    eos_id, pad_id = tokenizer.token_to_id(eos), tokenizer.token_to_id(pad)
    resume_dir = resolve_checkpoint(cfg.resume_from) if cfg.resume_from else None
    model = build_model(cfg, tokenizer.get_vocab_size(), eos_id, pad_id, resume_dir).to(device)
    optimizer = make_optimizer(model, cfg, device)
    scheduler = make_scheduler(optimizer, cfg)

    def tokens() -> TokenFile | None:
        return prepare_tokens(cfg.corpus_path, cfg.corpus_format, cfg.tokenizer_path, cfg.output_dir, reporter)

    # Rank 0 tokenizes (None: stopped meanwhile); the other ranks wait for it, then reuse its file.
    token_file = tokens() if distributed.is_main() else None
    stopped = distributed.any_rank(distributed.is_main() and token_file is None, device)
    if not stopped and token_file is None:
        token_file = tokens()
    if stopped or token_file is None:
        reporter.status("cancelled", step=0)
        return None
    split = split_blocks(token_file.count, cfg.context_length, cfg.val_fraction, cfg.seed)
    s = Setup(
        cfg=cfg,
        reporter=reporter,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        device=device,
        precision=precision,
        blocks=TokenBlocks(token_file, split.block_len),
        sampler=BatchSampler(split.train, cfg.batch_size, cfg.seed),
        val_batches=val_batch_indices(split.val, cfg.batch_size, cfg.eval_batches),
        tokenizer=tokenizer,
        eos_id=eos_id,
    )
    if resume_dir is not None:
        saved = load_for_resume(resume_dir, optimizer, scheduler)  # last: it restores the RNGs
        s.sampler.load_state(saved["sampler"])
        s.step, s.tokens_seen = saved["step"], saved["tokens_seen"]
        s.last = saved.get("metrics", {})
        reporter.log(f"resumed from {resume_dir} at step {s.step}")

    n_params = model.num_parameters()
    per_step = presets.tokens_per_step(cfg)
    train_tokens = len(split.train) * cfg.context_length
    reporter.status(
        "running",
        total_steps=cfg.max_steps,
        step=s.step,
        summary={
            "params": n_params,
            "preset": cfg.preset if cfg.init_from is None else None,
            "vocab_size": model.config.vocab_size,
            "device": device.type,
            "devices": distributed.world_size(),
            "precision": precision,
            "tokens_per_step": per_step,
            "flops_per_step": presets.flops_per_token(n_params) * per_step,
            "total_flops": presets.training_flops(n_params, per_step * cfg.max_steps),
            "train_tokens": train_tokens,
            "val_tokens": len(split.val) * cfg.context_length,
            "epochs": round(per_step * cfg.max_steps / train_tokens, 3),
            "chinchilla_tokens": presets.chinchilla_tokens(n_params),
            "resumed_from_step": s.step if resume_dir is not None else None,
        },
    )
    return s


def fit(s: Setup) -> Path | None:
    """The loop. Eval, samples and checkpoints happen every N steps and once more at the end."""
    cfg, reporter = s.cfg, s.reporter
    s.model.train()
    train_model = distributed.wrap(s.model, s.device)
    train_model = torch.compile(train_model) if cfg.compile else train_model
    autocast = autocast_for(s.precision, s.device)
    meter = Meter(s.device)
    start_step = s.step
    done: dict[str, int] = {}  # "eval" / "sample" / "checkpoint" -> the step it last ran at
    last_save = time.monotonic()
    saved: Path | None = None
    checkpoint_evals = CheckpointEvals(cfg.eval_tasks, reporter)

    def run(work: str) -> None:
        nonlocal last_save, saved
        with meter.paused():  # not training time: kept out of tokens_per_s
            if distributed.is_main():  # rank 0 alone evaluates, samples and saves; the others wait for it
                if work == "eval":
                    report_eval(s, autocast)
                elif work == "sample":
                    reporter.sample(s.step, cfg.sample_prompt, generate_sample(s))
                else:
                    saved = save(s)
                    reporter.checkpoint(s.step, str(saved))
                    checkpoint_evals(s.step, saved)
                    last_save = time.monotonic()
            distributed.barrier()
        done[work] = s.step

    while s.step < cfg.max_steps and not distributed.any_rank(reporter.should_stop(), s.device):
        train_step(s, train_model, autocast, meter)
        if s.step % cfg.log_every == 0:
            report_train(s, meter)
        if s.step == cfg.max_steps:
            break  # the end-of-run eval, sample and checkpoint follow the loop
        if cfg.eval_every and s.step % cfg.eval_every == 0:
            run("eval")
        if cfg.sample_every and s.step % cfg.sample_every == 0:
            run("sample")
        # A timed checkpoint goes by rank 0's clock (the one that saves), and every rank follows it.
        minutes = (time.monotonic() - last_save) / 60
        timed = bool(cfg.checkpoint_every_minutes) and distributed.any_rank(
            distributed.is_main() and minutes >= cfg.checkpoint_every_minutes, s.device)
        if (cfg.checkpoint_every_steps and s.step % cfg.checkpoint_every_steps == 0) or timed:
            run("checkpoint")

    if meter.steps:
        report_train(s, meter)
    if s.step < cfg.max_steps:
        # Stopped by SIGINT/SIGTERM: keep the progress, skip the evaluation, exit promptly.
        reporter.log(f"stop requested: stopping at step {s.step}")
        if s.step > start_step and done.get("checkpoint") != s.step:
            run("checkpoint")
        reporter.status("cancelled", step=s.step, summary=dict(s.last))
        return None

    if done.get("eval") != s.step:
        run("eval")
    if cfg.sample_every and done.get("sample") != s.step:
        run("sample")
    if done.get("checkpoint") != s.step:
        run("checkpoint")
    if not distributed.is_main():
        return None
    assert saved is not None
    reporter.artifact(
        "checkpoint",
        str(saved),
        {
            "step": s.step,
            "params": s.model.num_parameters(),
            "preset": cfg.preset if cfg.init_from is None else None,
            "val_loss": s.last.get("val_loss"),
            "tokens_seen": s.tokens_seen,
        },
    )
    reporter.status("succeeded", step=s.step, summary=dict(s.last))
    return saved


class Meter:
    """Loss and gradient-norm sums since the last log, kept on the device, and the interval's time.

    Summing on the device keeps the loop free of host syncs: the only one is `read`, once per
    log interval. Time spent in `paused()` (eval, samples, checkpoints) is not training time.
    """

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device)
        self.norm_sum = torch.zeros((), device=device)
        self.steps = 0
        self.lr = 0.0
        self.started = time.perf_counter()
        self.paused_s = 0.0

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, lr: float) -> None:
        self.loss_sum += loss
        self.norm_sum += grad_norm
        self.lr = lr  # the rate of the latest step
        self.steps += 1

    @contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.paused_s += time.perf_counter() - began

    def read(self) -> tuple[float, float, float]:
        """(mean loss, mean grad norm, training seconds) of the interval; starts a new one."""
        loss = distributed.mean(self.loss_sum / self.steps).item()  # sync point: waits for the queued steps
        norm = (self.norm_sum / self.steps).item()
        seconds = time.perf_counter() - self.started - self.paused_s
        self.loss_sum.zero_()
        self.norm_sum.zero_()
        self.steps, self.started, self.paused_s = 0, time.perf_counter(), 0.0
        return loss, norm, seconds


def train_step(
    s: Setup, train_model: torch.nn.Module, autocast: AbstractContextManager, meter: Meter
) -> None:
    """One optimizer step over `grad_accum` micro-batches (each rank its share of each)."""
    cfg = s.cfg
    loss_sum = torch.zeros((), device=s.device)
    for micro in range(cfg.grad_accum):
        batch = torch.from_numpy(s.blocks.read(distributed.shard(s.sampler.next_indices()))).to(s.device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        # Under DDP, gradients are averaged over the ranks once, in the last micro-batch's backward.
        last = micro == cfg.grad_accum - 1
        with nullcontext() if last or not distributed.active() else train_model.no_sync():
            with autocast:
                logits = train_model(input_ids=inputs, use_cache=False).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            (loss / cfg.grad_accum).backward()
        loss_sum += loss.detach() / cfg.grad_accum
    clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure the norm, never scale
    grad_norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), clip)
    lr = s.optimizer.param_groups[0]["lr"]  # the rate this step uses: the scheduler moves it next
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    s.step += 1
    s.tokens_seen += presets.tokens_per_step(cfg)
    meter.add(loss_sum, grad_norm, lr)


def report_train(s: Setup, meter: Meter) -> None:
    steps, lr = meter.steps, meter.lr
    loss, grad_norm, seconds = meter.read()
    values = {
        "loss": loss,
        "lr": lr,
        "grad_norm": grad_norm,
        "tokens_per_s": steps * presets.tokens_per_step(s.cfg) / max(seconds, 1e-9),
        "tokens": s.tokens_seen,
        "progress": s.step / s.cfg.max_steps,
    }
    s.reporter.metric(s.step, values)
    s.last.update(values)
    if not math.isfinite(loss):
        raise RuntimeError(f"the loss became {loss} at step {s.step}: training diverged (lower lr)")


def report_eval(s: Setup, autocast: AbstractContextManager) -> None:
    val_loss = evaluate(s, autocast)
    values = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50.0))}
    s.reporter.metric(s.step, values)
    s.last.update(values)


@torch.no_grad()
def evaluate(s: Setup, autocast: AbstractContextManager) -> float:
    """Mean next-token loss over the fixed validation batches."""
    s.model.eval()
    total = torch.zeros((), device=s.device, dtype=torch.float64)
    count = 0
    for indices in s.val_batches:
        batch = torch.from_numpy(s.blocks.read(indices)).to(s.device)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        with autocast:
            logits = s.model(input_ids=inputs, use_cache=False).logits
        total += F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="sum")
        count += targets.numel()
    s.model.train()
    return (total / count).item()  # sync point


@torch.no_grad()
def generate_sample(s: Setup) -> str:
    """A top-k sample from `sample_prompt` (or from eos), seeded by the config's seed: samples at
    different steps compare, and the global RNG, which a resume restores, is left untouched."""
    cfg = s.cfg
    s.model.eval()
    prompt = s.tokenizer.encode(cfg.sample_prompt, add_special_tokens=False).ids or [s.eos_id]
    new = sample_continuation(s.model, prompt, max_new_tokens=cfg.sample_tokens, window=cfg.context_length,
                              top_k=SAMPLE_TOP_K, temperature=SAMPLE_TEMPERATURE, seed=cfg.seed, stop_ids=[s.eos_id])
    s.model.train()
    return s.tokenizer.decode(new)


def save(s: Setup) -> Path:
    trainer_state = {
        "tokens_seen": s.tokens_seen,
        "sampler": s.sampler.state(),
        "metrics": dict(s.last),
        "config": s.cfg.to_dict(),
    }
    return save_checkpoint(
        s.cfg.output_dir, s.step, s.model, s.cfg.tokenizer_path, s.optimizer, s.scheduler,
        trainer_state,
    )


def build_model(
    cfg: PretrainConfig, vocab_size: int, eos_id: int, pad_id: int, resume_dir: Path | None
) -> PreTrainedModel:
    """A fresh model of the preset, or the weights of `resume_dir` / `init_from`, in fp32."""
    source = resume_dir or (Path(cfg.init_from) if cfg.init_from else None)
    if source is None:
        config = LlamaConfig(
            **presets.get_preset(cfg.preset),
            vocab_size=vocab_size,
            bos_token_id=eos_id,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        return LlamaForCausalLM(config)

    field_name = "resume_from" if resume_dir else "init_from"
    if not (source / "config.json").is_file():
        raise ConfigError(field_name, f"{source} is not a model folder (no config.json)")
    # Master weights stay fp32 whatever the folder holds; precision=bf16 is autocast on top. The
    # folder is checked as every stage's base model is: what it names stays inside it.
    model, _ = load_base_model(source, AutoModelForCausalLM, field_name, dtype=torch.float32)
    if model.config.vocab_size < vocab_size:
        raise ConfigError(
            "tokenizer_path",
            f"the tokenizer has {vocab_size} tokens, the model in {source} only "
            f"{model.config.vocab_size}",
        )
    longest = getattr(model.config, "max_position_embeddings", None)
    if longest is not None and cfg.context_length > longest:
        raise ConfigError(
            "context_length",
            f"{cfg.context_length} is longer than the {longest} positions the model can serve",
        )
    model.config.eos_token_id = model.generation_config.eos_token_id = eos_id
    model.config.pad_token_id = model.generation_config.pad_token_id = pad_id
    return model


def make_optimizer(
    model: torch.nn.Module, cfg: PretrainConfig, device: torch.device
) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings (dim >= 2), none on norms (nanoGPT's rule)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda"
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: PretrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup to `lr` over `warmup_steps`, then cosine down to `lr * min_lr_ratio`."""

    def factor(i: int) -> float:  # i: optimizer steps taken so far
        if i < cfg.warmup_steps:
            return (i + 1) / cfg.warmup_steps
        progress = min((i - cfg.warmup_steps) / max(cfg.max_steps - cfg.warmup_steps, 1), 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
