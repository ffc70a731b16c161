"""Every kind of cell, declared once: its inputs, the training stage it runs (training/stages.py), its
form and its basic fields, its output and its template partial. The rest of the lab reads `CELL_KINDS`.

This module sits below the ones that act on cells (kinds.py resolves inputs, forms.py builds forms,
views.py renders), so a hand-written form and a kind's extra page context are named by dotted path
and imported when first used.

Adding a kind: a `Cell.Kind` choice (the database field's choices), a `CellKind` here, a partial
`templates/notebooks/cells/<kind>.html`, and tests.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from django.utils.module_loading import import_string

from lab.datasets.models import Dataset
from lab.notebooks.models import Cell
from lab.queues import run_queue
from lab.runs.models import Artifact
from training import classify_config, dpo_config, evaluate_config, rl_config, sft_config
from training.config import ConfigError, _Config
from training.pretrain_config import PretrainConfig
from training.reward_config import METHODS as REWARD_METHODS
from training.reward_config import RewardConfig
from training.stages import STAGES, Stage


@dataclass(frozen=True)
class InputSpec:
    """One input of a cell: an upstream cell of the notebook, or a dataset of the team, by id."""

    key: str
    label: str
    cells: tuple[str, ...] = ()
    dataset_kinds: tuple[str, ...] = ()
    many: bool = False  # a list of ids (several models compared)
    optional: bool = False
    settings_of: bool = False
    """The upstream cell's settings and dataset, not its output: the evaluate cells a training cell
    scores each of its checkpoints with (they need not have run)."""

    @property
    def is_dataset(self) -> bool:
        return bool(self.dataset_kinds)


# Config fields the lab fills from a cell's inputs (and a resume), never typed in its form.
SET_BY_LAB = frozenset({"corpus_path", "corpus_format", "input_path", "input_format", "tokenizer_path", "output_dir",
                        "resume_from", "init_from", "base_model", "dataset_path", "dataset_format", "models",
                        "prompts_path", "prompts_format", "reference_model", "reward_model", "eval_tasks"})
# Fields of a cell's form that set its runs, not its stage's config: how many devices a run asks for
# (Run.devices), shown by the kinds whose stage trains on several.
RUN_FIELDS = frozenset({"devices"})


@dataclass(frozen=True)
class CellKind:
    kind: str
    """A `Cell.Kind` value."""
    inputs: tuple[InputSpec, ...] = ()
    stage: str | None = None
    """The training stage a run of this cell runs (a key of training.stages.STAGES); None: it does not run."""
    paths: Callable[[dict, str], dict] | None = None
    """(resolved inputs, output dir) → the config fields the lab sets from them."""
    check: Callable[[_Config, dict], None] | None = None
    """A check of the built config against its inputs before queueing (ConfigError naming the field)."""
    placeholder_paths: dict | None = None
    """Stand-in paths to validate the form while an input has no output yet; None: the stage's config
    reads its inputs' files, so only the limits are checked until then."""
    form: str | None = None
    """Dotted path of a hand-written form; None: generated from the stage's config class (forms.py)."""
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Config fields whose allowed values are this stage's own (shown as a choice of them)."""
    basic: tuple[str, ...] = ()
    """Config fields shown first, after the inputs; the others sit under "Advanced"."""
    context: str | None = None
    """Dotted path of `f(cell, output) -> dict`, extra context for the kind's template partial."""
    output: str | None = None
    """Dotted path of `f(cell) -> Output | None`, for a kind whose output is not its run's artifact (a
    picked dataset or model, a clean run's dataset version); None: the artifact its stage outputs."""
    start: str | None = None
    """Dotted path of `f(request, cell) -> HttpResponse`, for a kind whose "Run" starts something other
    than a run (annotate opens a feedback campaign); None: a run of its stage (start_cell_run)."""

    @property
    def label(self) -> str:
        return Cell.Kind(self.kind).label

    @property
    def runnable(self) -> bool:
        return self.stage is not None

    @cached_property
    def training_stage(self) -> Stage | None:
        return STAGES[self.stage] if self.stage else None

    @property
    def config_class(self) -> type[_Config] | None:
        return self.training_stage.config if self.stage else None

    @property
    def queue(self) -> str | None:
        if not self.stage:
            return None
        return run_queue(self.training_stage.gpu)

    @property
    def output_artifact(self) -> str | None:
        """The Artifact kind a run's output is registered as; None when it makes a dataset version (or nothing)."""
        if not self.stage or self.training_stage.output.dataset:
            return None
        return Artifact.Kind(self.training_stage.output.kind)

    @property
    def input_keys(self) -> set[str]:
        return {spec.key for spec in self.inputs}

    @property
    def multi_device(self) -> bool:
        """A run may ask for several devices (its stage trains under torchrun): the form asks how many."""
        return self.runnable and self.training_stage.multi_device

    def stage_settings(self, config: dict) -> dict:
        """A cell's config without what is not its stage's: its inputs and the run's own fields."""
        return {k: v for k, v in config.items() if k not in self.input_keys and k not in RUN_FIELDS}

    @property
    def partial(self) -> str:
        return f"notebooks/cells/{self.kind}.html"

    @cached_property
    def extra_context(self) -> Callable | None:
        return import_string(self.context) if self.context else None

    @cached_property
    def output_of(self) -> Callable | None:
        return import_string(self.output) if self.output else None

    @cached_property
    def starter(self) -> Callable | None:
        return import_string(self.start) if self.start else None


def _clean_paths(inputs: dict, output_dir: str) -> dict:
    corpus = inputs["corpus_cell"]
    return {"input_path": corpus.path, "input_format": corpus.metadata["format"], "output_dir": output_dir}


def _corpus_paths(inputs: dict, output_dir: str) -> dict:
    corpus = inputs["corpus_cell"]
    return {"corpus_path": corpus.path, "corpus_format": corpus.metadata["format"], "output_dir": output_dir}


def _pretrain_paths(inputs: dict, output_dir: str) -> dict:
    paths = _corpus_paths(inputs, output_dir)
    if base := inputs.get("model_cell"):
        # Continued pretraining: the base's weights and its own tokenizer (a new one would not match them).
        return paths | {"init_from": base.path, "tokenizer_path": str(Path(base.path) / "tokenizer.json")}
    if "tokenizer_cell" in inputs:
        return paths | {"tokenizer_path": inputs["tokenizer_cell"].path}
    raise ConfigError("tokenizer_cell", "choose a tokenizer input, or a base model to continue pretraining")


def _fine_tune_paths(inputs: dict, output_dir: str) -> dict:
    dataset = inputs["dataset"]
    return {"base_model": inputs["model_cell"].path, "dataset_path": dataset.path,
            "dataset_format": dataset.metadata["format"], "output_dir": output_dir}


def _generate_paths(inputs: dict, output_dir: str) -> dict:
    models = [{"path": m.path, "label": m.name, "artifact": m.id} for m in inputs["model_cells"]]
    paths = {"models": models, "output_dir": output_dir}
    if dataset := inputs.get("dataset"):
        paths |= {"prompts_path": dataset.path, "prompts_format": dataset.metadata["format"]}
    return paths


def _evaluate_paths(inputs: dict, output_dir: str) -> dict:
    dataset = inputs["dataset"]
    paths = _generate_paths({"model_cells": inputs["model_cells"]}, output_dir) | {
        "dataset_path": dataset.path, "dataset_format": dataset.metadata["format"]}
    if reward := inputs.get("reward_cell"):
        paths["reward_model"] = reward.path
    return paths


def _dpo_paths(inputs: dict, output_dir: str) -> dict:
    """The policy and the data as a fine-tune's; a reference model when the cell names one."""
    paths = _fine_tune_paths(inputs, output_dir)
    if reference := inputs.get("reference_cell"):
        if reference.path == paths["base_model"]:
            raise ConfigError("reference_cell", "is the base model itself: leave it empty, the reference is then the "
                                                "base (with LoRA, the base with its adapters disabled: no second copy)")
        paths["reference_model"] = reference.path
    return paths


def _rl_paths(inputs: dict, output_dir: str) -> dict:
    """The policy and the prompts as a fine-tune's; the reward model when the cell names one."""
    paths = _fine_tune_paths(inputs, output_dir)
    if reward := inputs.get("reward_cell"):
        paths["reward_model"] = reward.path
    return paths


def eval_task(evaluate) -> dict:
    """An evaluate cell, resolved as a `settings_of` input, as one of a training config's `eval_tasks`:
    its settings, its dataset, and a label for the metrics (`eval/<label>/…`) from its title."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", evaluate.name).strip("-_.")[:30] or "eval"
    return {**evaluate.metadata["settings"], "label": f"{label}-{evaluate.metadata['cell']}",
            "dataset_path": evaluate.path, "dataset_format": evaluate.metadata["format"]}


def _evaluating_checkpoints(paths: Callable[[dict, str], dict]) -> Callable[[dict, str], dict]:
    """`paths`, and the `eval_tasks` of the evaluate cells the training cell names in `eval_cells`."""
    def with_eval_tasks(inputs: dict, output_dir: str) -> dict:
        return paths(inputs, output_dir) | {"eval_tasks": [eval_task(e) for e in inputs.get("eval_cells", [])]}
    return with_eval_tasks


def check_data_fits(config: PretrainConfig, inputs: dict) -> None:
    """Refuse a batch larger than the corpus before queueing, when the tokenizer counted this corpus.

    The count comes from the tokenizer run (tokens of the same corpus under the same tokenizer), so
    the estimate is close; the training process checks exactly and fails with the same field.
    Continued pretraining uses the base model's tokenizer, which counted nothing here.
    """
    if "tokenizer_cell" not in inputs or "model_cell" in inputs:
        return
    tokenizer, corpus = inputs["tokenizer_cell"], inputs["corpus_cell"]
    tokens = tokenizer.metadata.get("tokens")
    counted_here = Artifact.objects.filter(pk=tokenizer.id, parent_datasets=corpus.id).exists()
    if not tokens or not counted_here:
        return
    blocks = (tokens + tokenizer.metadata.get("n_records", 0)) // (config.context_length + 1)
    train_blocks = int(blocks * (1 - config.val_fraction))
    if config.batch_size > train_blocks:
        raise ConfigError(
            "batch_size",
            f"{config.batch_size} is larger than the ~{train_blocks} training sequences of {config.context_length} "
            f"tokens in '{corpus.name}': lower the batch size or the context length",
        )


CORPUS_INPUT = InputSpec("corpus_cell", "corpus", cells=(Cell.Kind.CORPUS, Cell.Kind.CLEAN))
# A model is a checkpoint: picked in a base-model cell, or the output of a training cell.
MODEL_CELLS = (Cell.Kind.MODEL, Cell.Kind.PRETRAIN, Cell.Kind.SFT, Cell.Kind.DPO, Cell.Kind.RL)
MODEL_INPUT = InputSpec("model_cell", "base model", cells=MODEL_CELLS)
EVAL_CELLS_INPUT = InputSpec("eval_cells", "evaluate each checkpoint with", cells=(Cell.Kind.EVALUATE,), many=True,
                             optional=True, settings_of=True)
# A reward model scores answers and is no policy: the cells that read one (RL, a judge) take it from these.
REWARD_CELLS = (Cell.Kind.REWARD,)
PLACEHOLDER_PATHS = {"corpus_path": "/validate/corpus", "tokenizer_path": "/validate/tokenizer.json",
                     "output_dir": "/validate/run"}

CELL_KINDS: dict[str, CellKind] = {
    k.kind: k
    for k in (
        CellKind(Cell.Kind.NOTE, form="lab.notebooks.forms.NoteForm"),
        CellKind(Cell.Kind.CORPUS, form="lab.notebooks.forms.CorpusCellForm", output="lab.notebooks.kinds.corpus_output"),
        CellKind(Cell.Kind.CLEAN, (CORPUS_INPUT,), stage="clean", paths=_clean_paths,
                 placeholder_paths={"input_path": "/validate/corpus", "output_dir": "/validate/run"},
                 basic=("min_chars", "exact_dedup", "near_dedup", "val_fraction"),
                 context="lab.notebooks.views.clean_report", output="lab.notebooks.kinds.corpus_output"),
        CellKind(Cell.Kind.TOKENIZER, (CORPUS_INPUT,), stage="tokenizer", paths=_corpus_paths,
                 placeholder_paths={k: v for k, v in PLACEHOLDER_PATHS.items() if k != "tokenizer_path"},
                 basic=("algorithm", "vocab_size")),
        # With a base model, pretraining continues from its weights and uses its tokenizer.
        CellKind(Cell.Kind.PRETRAIN,
                 (CORPUS_INPUT, InputSpec("tokenizer_cell", "tokenizer", cells=(Cell.Kind.TOKENIZER,), optional=True),
                  InputSpec("model_cell", "base model (continued pretraining)", cells=MODEL_CELLS, optional=True),
                  EVAL_CELLS_INPUT),
                 stage="pretrain", paths=_evaluating_checkpoints(_pretrain_paths), check=check_data_fits,
                 placeholder_paths=PLACEHOLDER_PATHS,
                 options={"precision": PretrainConfig.PRECISIONS},
                 basic=("preset", "context_length", "batch_size", "max_steps", "lr"),
                 context="lab.notebooks.views.pretrain_estimate"),
        CellKind(Cell.Kind.MODEL, form="lab.notebooks.forms.ModelCellForm", output="lab.notebooks.kinds.model_output"),
        CellKind(Cell.Kind.SFT, (MODEL_INPUT, InputSpec("dataset", "SFT dataset", dataset_kinds=(Dataset.Kind.SFT,)),
                                 EVAL_CELLS_INPUT),
                 stage="sft", paths=_evaluating_checkpoints(_fine_tune_paths),
                 options={"method": sft_config.METHODS, "loss_on": sft_config.LOSS_ON, "schedule": sft_config.SCHEDULES,
                          "precision": sft_config.PRECISIONS},
                 basic=("method", "max_steps", "lr", "batch_size", "lora_r")),
        CellKind(Cell.Kind.CLASSIFY,
                 (MODEL_INPUT, InputSpec("dataset", "classification dataset", dataset_kinds=(Dataset.Kind.CLASSIFICATION,))),
                 stage="classify", paths=_fine_tune_paths,
                 options={"method": classify_config.METHODS, "precision": classify_config.ClassifyConfig.PRECISIONS},
                 basic=("method", "max_steps", "lr", "batch_size")),
        CellKind(Cell.Kind.REWARD,
                 (MODEL_INPUT, InputSpec("dataset", "preference dataset", dataset_kinds=(Dataset.Kind.PREFERENCE,))),
                 stage="reward", paths=_fine_tune_paths,
                 options={"method": REWARD_METHODS, "schedule": sft_config.SCHEDULES, "precision": RewardConfig.PRECISIONS},
                 basic=("method", "max_steps", "lr", "batch_size", "max_length")),
        # Preference pairs; kto also learns from unpaired labels, which the lab holds as prompt/completion (sft) data.
        CellKind(Cell.Kind.DPO,
                 (MODEL_INPUT,
                  InputSpec("dataset", "preference dataset", dataset_kinds=(Dataset.Kind.PREFERENCE, Dataset.Kind.SFT)),
                  InputSpec("reference_cell", "reference model (full fine-tuning)", cells=MODEL_CELLS, optional=True),
                  EVAL_CELLS_INPUT),
                 stage="dpo", paths=_evaluating_checkpoints(_dpo_paths),
                 options={"method": dpo_config.METHODS, "loss_type": dpo_config.LOSS_TYPES, "schedule": dpo_config.SCHEDULES,
                          "precision": dpo_config.DpoConfig.PRECISIONS},
                 basic=("loss_type", "beta", "method", "max_steps", "lr")),
        CellKind(Cell.Kind.RL,
                 (MODEL_INPUT,
                  InputSpec("dataset", "prompts dataset",
                            dataset_kinds=(Dataset.Kind.EVAL, Dataset.Kind.SFT, Dataset.Kind.PREFERENCE)),
                  InputSpec("reward_cell", "reward model", cells=REWARD_CELLS, optional=True)),
                 stage="rl", paths=_rl_paths,
                 options={"method": rl_config.METHODS, "schedule": rl_config.SCHEDULES, "precision": rl_config.PRECISIONS},
                 basic=("rewards", "num_generations", "max_completion_length", "beta", "max_steps", "lr")),
        CellKind(Cell.Kind.GENERATE,
                 (InputSpec("model_cells", "models", cells=MODEL_CELLS, many=True),
                  InputSpec("dataset", "prompts dataset", optional=True,
                            dataset_kinds=(Dataset.Kind.SFT, Dataset.Kind.PREFERENCE, Dataset.Kind.EVAL))),
                 stage="generate", paths=_generate_paths,
                 basic=("prompts", "samples_per_prompt", "max_new_tokens", "temperature"),
                 context="lab.notebooks.views.generations_of"),
        CellKind(Cell.Kind.ANNOTATE, (InputSpec("generate_cell", "generated responses", cells=(Cell.Kind.GENERATE,)),),
                 form="lab.notebooks.forms.AnnotateForm", context="lab.notebooks.views.campaigns",
                 start="lab.notebooks.views.open_campaign"),
        # A classify cell's checkpoint is scored on a classification dataset.
        CellKind(Cell.Kind.EVALUATE,
                 (InputSpec("model_cells", "checkpoints", cells=(*MODEL_CELLS, Cell.Kind.CLASSIFY), many=True),
                  InputSpec("dataset", "evaluation dataset",
                            dataset_kinds=(Dataset.Kind.EVAL, Dataset.Kind.TEXT, Dataset.Kind.CLASSIFICATION)),
                  InputSpec("reward_cell", "reward model (scores generated answers)", cells=REWARD_CELLS, optional=True)),
                 stage="evaluate", paths=_evaluate_paths,
                 options={"task": evaluate_config.TASKS, "mc_style": evaluate_config.MC_STYLES,
                          "precision": evaluate_config.PRECISIONS},
                 basic=("max_examples", "num_fewshot", "answer_extraction", "samples", "temperature"),
                 context="lab.evaluations.views.evaluation_table"),
        # Runs nothing: opens the playground on the model cell's current checkpoint.
        CellKind(Cell.Kind.PLAYGROUND, (InputSpec("model_cell", "model", cells=MODEL_CELLS),),
                 form="lab.hub.cells.PlaygroundCellForm", context="lab.hub.cells.playground_model"),
    )
}
