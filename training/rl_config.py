"""The rl stage's config (`python -m training rl`): reinforcement learning of a policy against
rewards, with trl's GRPOTrainer. No torch: the web validates a cell's form with it before it queues a
run; the checks that read files read only config files, safetensors headers and a first record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from training.checkpoint_layout import resolve_checkpoint
from training.config import TrainingLoopConfig, own_fields_first
from training.config_checks import (
    MAX_SEQUENCE,
    ConfigError,
    check_limits,
    check_lora,
    require_at_least_one,
    require_choice,
)
from training.dataset_files import check_format, require_dataset_file
from training.lora_targets import check_target_modules
from training.model_info import inspect_model
from training.prompts import prompts_file_kind
from training.rewards import REWARD_MODEL, RewardSpec, parse_rewards
from training.sft_config import LoraFields

METHODS = ("full", "lora")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
REFERENCE_KINDS = ("eval", "sft")
"""Prompt datasets whose records carry a reference answer: an eval dataset's `answer`, an sft
conversation's last reply."""
MAX_GENERATIONS = 64
MAX_BETA = 10.0


@own_fields_first
@dataclass(kw_only=True)
class RlConfig(TrainingLoopConfig, LoraFields):
    """Reinforcement learning of a causal LM against weighted rewards, with trl's GRPOTrainer: each
    prompt is answered `num_generations` times, and each answer is pushed up or down by how its
    reward compares with its group's."""

    PRECISIONS: ClassVar[tuple[str, ...]] = PRECISIONS

    base_model: str
    """The policy to train: a Hugging Face causal-LM folder (a lab checkpoint or an uploaded model)."""
    dataset_path: str
    """The prompts: an sft dataset (each conversation up to its last reply, the reply its reference
    answer), an eval dataset (its questions, its answers the references), a preference dataset (its
    prompts) or a jsonl file of `{"prompt": …}`."""
    output_dir: str
    """Run folder: Trainer checkpoints `checkpoint-N/`; with LoRA also `adapter/` and `merged/`."""
    dataset_format: str = "jsonl"
    """jsonl, csv, tsv, parquet, … (training.datasets' formats); it wins over the file's suffix."""
    reward_model: str = ""
    """A lab reward model folder (a sequence classifier with one label), for a `reward_model` reward."""
    rewards: list[dict] = field(default_factory=lambda: [{"kind": "exact_match", "weight": 1.0, "extract": "last_number"}])
    """The rewards, summed with their weights: a list of `{"kind", "weight", …}`. Kinds:
    `exact_match` (`extract`: gsm8k, last_number or a regular expression; 1 when the answer is the
    reference), `regex` (`pattern`: 1 when it matches), `length` (`target` tokens: 1 there, 0 at 0
    and twice it), `format` (`format`: gsm8k, think_answer, boxed or json) and `reward_model` (the
    score of the reward model input)."""
    num_generations: int = 4
    """Answers sampled per prompt: a group, each scored against the group's mean reward (at least 2)."""
    max_completion_length: int = 128
    """Tokens generated at most per answer."""
    beta: float = 0.04
    """Weight of the KL penalty to the reference model (the policy at the start); 0 drops it and
    does not hold a reference model at all."""
    temperature: float = 1.0
    """Sampling temperature of the answers: they must differ for the group to teach anything."""
    max_prompts: int = 1000
    """Use at most this many prompts (the first ones) of the dataset."""
    method: str = "full"
    """`full`: every weight trains (with beta above 0, a frozen copy is the reference). `lora`:
    low-rank adapters, the base frozen; the base without them is the reference, no copy."""
    merge_lora: bool = True
    """LoRA: the artifact is the base with the adapters merged in (`merged/`), the adapter kept in
    `adapter/` beside it; false: the artifact is the adapter alone."""
    lr: float = 1e-6
    schedule: str = "constant"
    """After warmup: `cosine` down to `lr * min_lr_ratio`, `linear` down to 0, or `constant`."""
    warmup_steps: int = 0
    batch_size: int = 2
    """Prompts per micro-batch, each answered `num_generations` times."""
    max_steps: int = 100
    """Optimizer steps; each generates `batch_size * grad_accum * num_generations` answers."""
    weight_decay: float = 0.0
    eval_every: int = 0
    """Score answers to the held-out prompts every this many steps and at the end (`val_reward`); 0 = end only."""
    log_every: int = 1
    """Emit the metrics (mean reward per function, KL, completion length) and a table of sample
    answers with their rewards every this many steps."""

    def __post_init__(self) -> None:
        parse_rewards(self.rewards)  # first: its errors name the reward and its field, not only `rewards`
        self._check_types()
        check_limits(self)
        for name in ("base_model", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(name, "must not be empty")
        check_format("dataset_format", self.dataset_format)
        require_choice("method", self.method, METHODS)
        require_choice("schedule", self.schedule, SCHEDULES)
        require_at_least_one(self, "lora_r", "max_completion_length", "max_prompts", "max_steps")
        if self.max_completion_length > MAX_SEQUENCE:
            raise ConfigError("max_completion_length", f"must be at most {MAX_SEQUENCE}: no model this lab trains serves more")
        if not 2 <= self.num_generations <= MAX_GENERATIONS:
            raise ConfigError("num_generations", f"must be between 2 and {MAX_GENERATIONS}: a group of one answer "
                                                 f"has no mean to compare it with (not {self.num_generations})")
        if not 0 <= self.beta <= MAX_BETA:
            raise ConfigError("beta", f"must be between 0 and {MAX_BETA:g} (typical: 0 to 0.1)")
        if not self.temperature > 0:
            raise ConfigError("temperature", "must be above 0: greedy answers in a group are all the same")
        check_lora(self)
        self._check_training_loop()
        self.reward_specs()
        self._check_inputs()

    @property
    def epochs(self) -> float:
        """An rl run always lasts `max_steps`; the Trainer's epochs, which it then ignores."""
        return 1.0

    def reward_specs(self) -> list[RewardSpec]:
        """The parsed `rewards`, each with the name trl logs it by."""
        specs = parse_rewards(self.rewards)
        wants_model = any(s.kind == REWARD_MODEL for s in specs)
        if wants_model and not self.reward_model:
            raise ConfigError("reward_model", "a reward_model reward needs a reward model input")
        if self.reward_model and not wants_model:
            raise ConfigError("rewards", 'a reward model is given: add {"kind": "reward_model", "weight": 1.0} to use it')
        return specs

    def _check_inputs(self) -> None:
        """The policy serves the answers' length, the reward model is a model, the prompts' file is
        of a kind that has prompts, and references where an exact-match reward needs them."""
        context = inspect_model(self.base_model).context_length
        if context is not None and self.max_completion_length >= context:
            raise ConfigError("max_completion_length", f"{self.max_completion_length} leaves no room for a prompt in the "
                                                       f"{context} positions (context) of the model")
        if self.method == "lora":
            check_target_modules(self.base_model, self.lora_target_modules)
        if self.reward_model:
            _check_reward_model(self.reward_model)
        require_dataset_file("dataset_path", self.dataset_path)
        kind = prompts_file_kind(self.dataset_path, self.dataset_format, "dataset_path")
        for i, spec in enumerate(parse_rewards(self.rewards)):
            if spec.kind == "exact_match" and kind not in REFERENCE_KINDS:
                raise ConfigError(f"rewards[{i}].kind", f"exact_match needs reference answers, which a {kind} dataset "
                                                        "has not: use an eval dataset (question, answer) or an sft one")
        if self.resume_from is not None:
            resolve_checkpoint(self.resume_from)


def _check_reward_model(path: str) -> None:
    info = inspect_model(path, "reward_model")
    if not info.architecture.endswith("ForSequenceClassification"):
        raise ConfigError("reward_model", f"{info.architecture} is not a reward model (a sequence classifier)")
