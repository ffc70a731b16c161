"""Evaluation during training: each checkpoint a run saves is scored with the evaluate configs its
config names (`eval_tasks`), and the scores are reported as metrics `eval/<label>/<metric>` at the
checkpoint's step, so they draw curves beside the loss. Pretrain's loop and the Trainer stages'
ReporterCallback call `CheckpointEvals` right after a checkpoint is written (on disk, whole)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from training.config_checks import ConfigError
from training.evaluate_config import CLASSIFICATION, EvaluateConfig
from training.events import Reporter

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")
MAX_TASKS = 8
SET_PER_CHECKPOINT = ("models", "output_dir")
"""Evaluate fields a task does not set: the model is the checkpoint, and nothing is written."""


@dataclass(kw_only=True)
class EvaluatedCheckpoints:
    """A stage config mixin (before TrainingLoopConfig in the bases): its checkpoints can be evaluated."""

    eval_tasks: list[dict] = field(default_factory=list)
    """Evaluate each checkpoint saved with these evaluate configs: each an object of the evaluate
    stage's fields (`dataset_path`, `task`, `max_examples`, `num_fewshot`, …; not `models` or
    `output_dir`) and a `label` naming it in the metrics, `eval/<label>/<metric>`. Each evaluation
    pauses training: keep `max_examples` small."""

    def _check_training_loop(self) -> None:
        super()._check_training_loop()  # type: ignore[misc]
        eval_configs(self.eval_tasks)
        if self.eval_tasks and getattr(self, "uses_lora", False):
            raise ConfigError("eval_tasks", "a LoRA checkpoint holds the adapters only: train full to evaluate each "
                                            "checkpoint, or evaluate the final model with an evaluate cell")


def eval_configs(tasks: list[dict]) -> dict[str, EvaluateConfig]:
    """{label: its EvaluateConfig}; a ConfigError names the task and its field (`eval_tasks[1].task`)."""
    if len(tasks) > MAX_TASKS:
        raise ConfigError("eval_tasks", f"at most {MAX_TASKS} tasks (not {len(tasks)})")
    configs: dict[str, EvaluateConfig] = {}
    for i, task in enumerate(tasks):
        where = f"eval_tasks[{i}]"  # a list of objects: the config's type check saw to it
        label = task.get("label")
        if not isinstance(label, str) or not LABEL.fullmatch(label):
            raise ConfigError(f"{where}.label", "must be 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit")
        if label in configs:
            raise ConfigError(f"{where}.label", f"{label!r} labels two tasks; labels must differ")
        for key in SET_PER_CHECKPOINT:
            if key in task:
                raise ConfigError(f"{where}.{key}", "is the checkpoint's own: leave it out")
        if not task.get("dataset_path"):
            raise ConfigError(f"{where}.dataset_path", "names the dataset each checkpoint is evaluated on")
        try:
            cfg = EvaluateConfig.from_dict({k: v for k, v in task.items() if k != "label"})
        except ConfigError as e:
            raise ConfigError(f"{where}.{e.field}", e.message) from None
        if cfg.task == CLASSIFICATION:
            raise ConfigError(f"{where}.task", "classification scores a classifier; a language model's checkpoints take "
                                               "perplexity, multiple_choice or generation")
        configs[label] = cfg
    return configs


class CheckpointEvals:
    """Scores a saved checkpoint with every task and reports `eval/<label>/<metric>` at its step."""

    def __init__(self, tasks: list[dict], reporter: Reporter) -> None:
        self.configs = eval_configs(tasks)
        self.reporter = reporter

    def __call__(self, step: int, folder: str | Path) -> None:
        if not self.configs:
            return
        import torch  # noqa: PLC0415  (the web reads this module's config mixin; only a run evaluates)

        from training.evaluate import evaluate_checkpoint  # noqa: PLC0415

        # A sampled generation task draws from torch's generators: training goes on from the state it
        # saved in the checkpoint, as a resumed run does, whether or not it was evaluated.
        with torch.random.fork_rng():
            for label, cfg in self.configs.items():
                if self.reporter.should_stop():
                    return  # a stop was asked for: the checkpoint is what matters, not its scores
                scores = evaluate_checkpoint(folder, cfg, self.reporter)
                if scores:
                    self.reporter.metric(step, {f"eval/{label}/{name}": value for name, value in scores.items()})
