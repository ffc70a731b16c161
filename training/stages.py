"""Every stage, declared once: its name, its config, the module that runs it, what it outputs and
whether it uses a GPU. The command line (`python -m training`) and the workers' output registration
read this table, docs/architecture.md lists it (a test holds them together); the lab is to read it too.

Torch-free on purpose: the web process imports it. A stage's module, which loads torch, is imported
only when the stage runs, once its config is known to be good, so a bad config fails fast. Every
stage module has the same shape: `setup(cfg, reporter)` → state, then `fit(state)`
(training/stage_shape.py).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from training.classify_config import ClassifyConfig
from training.clean_config import CleanConfig
from training.config import _Config
from training.dpo_config import DpoConfig
from training.evaluate_config import EvaluateConfig
from training.events import Reporter
from training.export_config import ExportConfig
from training.generate_config import GenerateConfig
from training.judge_config import JudgeConfig
from training.pretrain_config import PretrainConfig
from training.reward_config import RewardConfig
from training.rl_config import RlConfig
from training.sft_config import SftConfig
from training.stage_shape import setup_then_fit
from training.tokenizer_config import TokenizerConfig


class Gpu(StrEnum):
    """What a stage does with a GPU."""

    NONE = "none"
    """Never uses one (CPU work: tokenizers, text cleaning)."""
    CAN_USE = "can use"
    """Runs on a CPU, faster on a GPU (`device: auto` picks it)."""
    NEEDS = "needs"
    """Cannot run without one."""


@dataclass(frozen=True)
class Output:
    """What a stage makes, as the `kind` of its `artifact` event (docs/contracts.md)."""

    kind: str
    dataset: bool = False
    """True: it becomes datasets (a new version of the dataset the run read), not an Artifact of `kind`."""
    registered_by: str | None = None
    """The lab app that registers this output itself, through the registrar it adds for `kind` to
    lab/runs/outputs.py (`datasets`: a cleaned corpus becomes dataset versions; `feedback`: judgements
    become votes); None: an Artifact of `kind`."""


TOKENIZER = Output("tokenizer")
CORPUS = Output("corpus", dataset=True, registered_by="datasets")
CHECKPOINT = Output("checkpoint")
GENERATIONS = Output("generations")
EVALUATION = Output("evaluation")
JUDGEMENTS = Output("judgements", registered_by="feedback")
EXPORT = Output("export")
OUTPUTS = {o.kind: o for o in (TOKENIZER, CORPUS, CHECKPOINT, GENERATIONS, EVALUATION, EXPORT, JUDGEMENTS)}


@dataclass(frozen=True)
class Stage:
    name: str
    config: type[_Config]
    module: str
    """The module holding `setup(cfg, reporter)` and `fit(state)`."""
    output: Output
    gpu: Gpu
    summary: str
    """One line for `python -m training --help` and the docs."""
    multi_device: bool = False
    """Trains on several devices when launched under torchrun (training/distributed.py): a run may ask
    for more than one device."""

    def run(self, cfg: _Config, reporter: Reporter) -> Path | None:
        """Set up, then fit; imports the stage's module (and with it torch) now."""
        module = importlib.import_module(self.module)
        return setup_then_fit(module.setup, module.fit, cfg, reporter)


STAGES = {
    s.name: s
    for s in (
        Stage("tokenizer", TokenizerConfig, "training.tokenizer", TOKENIZER, Gpu.NONE,
              "learn a vocabulary (BPE, unigram or WordPiece) from a corpus"),
        Stage("clean", CleanConfig, "training.clean", CORPUS, Gpu.NONE,
              "normalise, filter and deduplicate a corpus, then split it into train and validation"),
        Stage("pretrain", PretrainConfig, "training.pretrain", CHECKPOINT, Gpu.CAN_USE,
              "pretrain a Llama-style decoder on a tokenized corpus, from scratch or on", multi_device=True),
        Stage("sft", SftConfig, "training.sft", CHECKPOINT, Gpu.CAN_USE,
              "fine-tune a causal LM on conversations (full, LoRA or QLoRA)", multi_device=True),
        Stage("reward", RewardConfig, "training.reward", CHECKPOINT, Gpu.CAN_USE,
              "train a reward model on preference pairs: one score per prompt and response"),
        Stage("classify", ClassifyConfig, "training.classify", CHECKPOINT, Gpu.CAN_USE,
              "fine-tune a base model into a sequence classifier"),
        Stage("dpo", DpoConfig, "training.dpo", CHECKPOINT, Gpu.CAN_USE,
              "preference-tune a causal LM on pairs or labels (DPO and its losses, ORPO, SimPO, KTO)",
              multi_device=True),
        Stage("rl", RlConfig, "training.rl", CHECKPOINT, Gpu.CAN_USE,
              "reinforcement-learn a causal LM against weighted rewards (GRPO): rules, a reward model or both"),
        Stage("generate", GenerateConfig, "training.generate", GENERATIONS, Gpu.CAN_USE,
              "sample K responses per prompt from one or more checkpoints"),
        Stage("evaluate", EvaluateConfig, "training.evaluate", EVALUATION, Gpu.CAN_USE,
              "score checkpoints on a dataset: perplexity, multiple choice, exact match, classification"),
        Stage("judge", JudgeConfig, "training.judge", JUDGEMENTS, Gpu.CAN_USE,
              "label a campaign's pairs of responses with a reward model or a checkpoint reading its guidelines"),
        Stage("export", ExportConfig, "training.export", EXPORT, Gpu.CAN_USE,
              "quantise a checkpoint for serving (int8 weight-only) and compare its perplexity"),
    )
}
