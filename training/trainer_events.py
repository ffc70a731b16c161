"""A transformers `TrainerCallback` that speaks the lab's events (docs/contracts.md), for every
stage that trains with a Trainer (sft through trl's SFTTrainer, classify).

Trainer logs become `metric` events with the lab's keys, evaluations become eval metrics (and
`sample` events, given a sampler), saves become `checkpoint` events, and a stop request
(SIGINT/SIGTERM) ends training at the end of the current step with a checkpoint, as the pretrain
loop does.

Under torchrun every rank runs the Trainer and this callback: the ranks agree each step whether any
of them was asked to stop (and, by rank 0's clock, whether a timed checkpoint is due), so all stop
or save at the same step; rank 0 alone scores checkpoints (the others' events go nowhere:
training/__main__.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from training import distributed
from training.checkpoint_evals import CheckpointEvals
from training.events import Reporter

TOKENS_KEY = "lab_tokens"
"""Where the callback writes the token count into the Trainer's log history, which checkpoints
keep: trl counts tokens from 0 again on a resume, the lab's count goes on."""
Sampler = Callable[[torch.nn.Module], list[tuple[str, str]]]
"""Generates the sample answers with the model being trained: (prompt, answer) pairs."""
EvalValues = Callable[[dict[str, float]], dict[str, float]]
"""The lab's metric values of an evaluation, from the Trainer's `eval_*` metrics."""


def language_model_eval(metrics: dict[str, float]) -> dict[str, float]:
    values = {"val_loss": metrics["eval_loss"], "val_ppl": math.exp(min(metrics["eval_loss"], 50.0))}
    if "eval_mean_token_accuracy" in metrics:
        values["val_token_accuracy"] = metrics["eval_mean_token_accuracy"]
    return values


def tokens_seen(checkpoint: Path | None) -> int:
    """The token count the checkpoint's run had reached; 0 without a checkpoint."""
    if checkpoint is None:
        return 0
    history = json.loads((checkpoint / "trainer_state.json").read_text()).get("log_history", [])
    counts = [entry[TOKENS_KEY] for entry in history if TOKENS_KEY in entry]
    return counts[-1] if counts else 0


def checkpoint_folder(output_dir: str | Path, step: int) -> Path:
    """Where the Trainer saves the checkpoint of `step`."""
    return Path(output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"


class ReporterCallback(TrainerCallback):
    """Feeds a Reporter from the Trainer's loop.

    Tokens are trl's `num_tokens` plus `tokens_offset`, the count a resumed run had reached (trl
    counts from 0 again), or else the Trainer's own count (`include_num_input_tokens_seen`, which a
    resume restores). tokens_per_s counts training time only: the time spent evaluating, sampling
    and saving after a step is left out, as the pretrain loop leaves it out.
    """

    def __init__(
        self,
        reporter: Reporter,
        summary: dict[str, Any],
        sampler: Sampler | None = None,
        checkpoint_every_minutes: float = 0.0,
        tokens_offset: int = 0,
        on_cuda: bool = False,
        eval_values: EvalValues = language_model_eval,
        log_keys: dict[str, str] | None = None,
        checkpoint_evals: CheckpointEvals | None = None,
    ) -> None:
        self.reporter = reporter
        self.checkpoint_evals = checkpoint_evals
        """Scores each checkpoint right after it is saved (the config's `eval_tasks`)."""
        self.eval_values = eval_values
        self.log_keys = log_keys or {}
        """A trainer's own training-log keys passed on as metric values, under the lab's name
        (`{"accuracy": "accuracy"}` for the reward stage's pairwise accuracy)."""
        self.summary = summary
        self.sampler = sampler
        self.checkpoint_every_s = checkpoint_every_minutes * 60
        self.tokens_offset = tokens_offset
        self.on_cuda = on_cuda
        self.stopped = False
        self.last: dict[str, float] = {}
        """The latest reported metric values, for the final summary and the artifact."""
        self._interval_start: float | None = None
        self._paused_s = 0.0
        self._tokens_at_interval_start = float(tokens_offset)
        self._step_ended = self._logged_at = 0.0
        self._side_work = False  # an evaluation or a save ran since the last step ended
        self._last_save = time.monotonic()

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        resumed = state.global_step or None
        self.reporter.status(
            "running", total_steps=state.max_steps, step=state.global_step,
            summary={**self.summary, "devices": args.world_size, "resumed_from_step": resumed},
        )
        self._last_save = time.monotonic()

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        now = time.perf_counter()
        if self._interval_start is None:
            self._interval_start = now
        elif self._side_work:
            self._paused_s += now - max(self._step_ended, self._logged_at)
        self._side_work = False

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self._step_ended = time.perf_counter()
        if state.global_step >= state.max_steps:
            # The end: log what is left, evaluate (and sample) once more, save. The default flow
            # does some of this; asking twice is harmless.
            control.should_log = control.should_evaluate = control.should_save = True
        elif distributed.any_rank(self.reporter.should_stop(), args.device):
            self.reporter.log(f"stop requested: stopping at step {state.global_step}")
            self.stopped = True
            control.should_training_stop = True
            control.should_log = control.should_save = True
            control.should_evaluate = False  # exit promptly: the checkpoint is what matters
        elif self.checkpoint_every_s and distributed.any_rank(
                distributed.is_main() and time.monotonic() - self._last_save >= self.checkpoint_every_s, args.device):
            control.should_save = True

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any):
        if not logs or "loss" not in logs:
            return  # eval logs (reported by on_evaluate) and the end-of-training summary
        now = time.perf_counter()
        tokens = (self.tokens_offset + logs["num_tokens"]) if "num_tokens" in logs else state.num_input_tokens_seen
        values = {
            "loss": logs["loss"],
            "lr": logs.get("learning_rate", 0.0),
            "grad_norm": logs.get("grad_norm"),
            "tokens": int(tokens),
            "progress": state.global_step / state.max_steps,
            "epoch": logs.get("epoch", state.epoch),
        }
        if "mean_token_accuracy" in logs:
            values["token_accuracy"] = logs["mean_token_accuracy"]
        values.update({name: logs[key] for key, name in self.log_keys.items() if key in logs})
        if self._interval_start is not None:
            seconds = now - self._interval_start - self._paused_s
            values["tokens_per_s"] = (tokens - self._tokens_at_interval_start) / max(seconds, 1e-9)
        if self.on_cuda:
            values["gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        values = {k: v for k, v in values.items() if v is not None}
        self.reporter.metric(state.global_step, values)
        self.last.update(values)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1][TOKENS_KEY] = values["tokens"]
        self._interval_start, self._paused_s, self._tokens_at_interval_start = now, 0.0, tokens
        self._logged_at = now
        if not math.isfinite(logs["loss"]):
            raise RuntimeError(
                f"the loss became {logs['loss']} at step {state.global_step}: training diverged (lower lr)"
            )

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, model: torch.nn.Module | None = None,
                    **kwargs: Any):
        self._side_work = True
        if metrics and "eval_loss" in metrics:
            values = self.eval_values(metrics)
            self.reporter.metric(state.global_step, values)
            self.last.update(values)
        if self.sampler is not None and model is not None:
            # Every rank generates (rank 0's are reported): no slower than the others waiting for
            # rank 0, and a sharded (FSDP) model needs all ranks for each forward.
            for prompt, text in self.sampler(model):
                self.reporter.sample(state.global_step, prompt, text)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any):
        self._side_work = True
        self._last_save = time.monotonic()
        folder = checkpoint_folder(args.output_dir, state.global_step)
        self.reporter.checkpoint(state.global_step, str(folder.resolve()))
        if self.checkpoint_evals is not None and distributed.is_main():
            self.checkpoint_evals(state.global_step, folder)


def train_to_the_end(trainer: Trainer, callback: ReporterCallback, resume_dir: Path | None) -> bool:
    """Train, resuming from `resume_dir` if given; True when the run reached its last step. A stop
    asked before or during training is reported as cancelled at the step it came to, and is False."""
    reporter = callback.reporter
    if distributed.any_rank(reporter.should_stop(), trainer.args.device):
        reporter.status("cancelled", step=trainer.state.global_step)
        return False
    trainer.train(resume_from_checkpoint=str(resume_dir) if resume_dir else None)
    state = trainer.state
    if state.global_step < state.max_steps:
        reporter.status("cancelled", step=state.global_step, summary=dict(callback.last))
        return False
    return True
