"""What each kind of cell takes as input, how it becomes a run, and what it outputs.

Cells name their inputs as upstream cells (`corpus_cell`, `model_cell`, …) or as team datasets
(`dataset`); at launch these are resolved to the current outputs and frozen into the run's `inputs`. A cell is stale
when an upstream cell's current output is no longer the one its current run used.
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from lab.datasets.models import Dataset
from lab.notebooks.models import Cell
from lab.runs.models import Artifact, Run, Status
from training.classify_config import ClassifyConfig
from training.clean import CleanConfig
from training.config import ConfigError, PretrainConfig, TokenizerConfig
from training.generate_config import GenerateConfig
from training.sft_config import SftConfig


@dataclass(frozen=True)
class InputSpec:
    """One input of a cell: an upstream cell of the notebook, or a dataset of the team, by id."""

    key: str
    label: str
    cells: tuple[str, ...] = ()
    dataset_kinds: tuple[str, ...] = ()
    many: bool = False  # a list of ids (several models compared)
    optional: bool = False

    @property
    def is_dataset(self) -> bool:
        return bool(self.dataset_kinds)


CORPUS_INPUT = InputSpec("corpus_cell", "corpus", cells=(Cell.Kind.CORPUS, Cell.Kind.CLEAN))
TOKENIZER_INPUT = InputSpec("tokenizer_cell", "tokenizer", cells=(Cell.Kind.TOKENIZER,))
# A model is a checkpoint: picked in a base-model cell, or the output of a training cell.
MODEL_CELLS = (Cell.Kind.MODEL, Cell.Kind.PRETRAIN, Cell.Kind.SFT)
MODEL_INPUT = InputSpec("model_cell", "base model", cells=MODEL_CELLS)
CELL_INPUTS: dict[str, tuple[InputSpec, ...]] = {
    Cell.Kind.NOTE: (),
    Cell.Kind.CORPUS: (),
    Cell.Kind.MODEL: (),
    Cell.Kind.CLEAN: (CORPUS_INPUT,),
    Cell.Kind.TOKENIZER: (CORPUS_INPUT,),
    # With a base model, pretraining continues from its weights and uses its tokenizer.
    Cell.Kind.PRETRAIN: (CORPUS_INPUT, InputSpec("tokenizer_cell", "tokenizer", cells=(Cell.Kind.TOKENIZER,), optional=True),
                         InputSpec("model_cell", "base model (continued pretraining)", cells=MODEL_CELLS, optional=True)),
    Cell.Kind.SFT: (MODEL_INPUT, InputSpec("dataset", "SFT dataset", dataset_kinds=(Dataset.Kind.SFT,))),
    Cell.Kind.CLASSIFY: (MODEL_INPUT, InputSpec("dataset", "classification dataset", dataset_kinds=(Dataset.Kind.CLASSIFICATION,))),
    Cell.Kind.GENERATE: (
        InputSpec("model_cells", "models", cells=MODEL_CELLS, many=True),
        InputSpec("dataset", "prompts dataset", dataset_kinds=(Dataset.Kind.SFT, Dataset.Kind.PREFERENCE, Dataset.Kind.EVAL),
                  optional=True),
    ),
    Cell.Kind.ANNOTATE: (InputSpec("generate_cell", "generated responses", cells=(Cell.Kind.GENERATE,)),),
}
RUNNABLE = {
    Cell.Kind.CLEAN: ("clean", "cpu"),
    Cell.Kind.TOKENIZER: ("tokenizer", "cpu"),
    Cell.Kind.PRETRAIN: ("pretrain", "gpu"),
    Cell.Kind.SFT: ("sft", "gpu"),
    Cell.Kind.CLASSIFY: ("classify", "gpu"),
    Cell.Kind.GENERATE: ("generate", "gpu"),
}
OUTPUT_ARTIFACT = {
    Cell.Kind.TOKENIZER: Artifact.Kind.TOKENIZER,
    Cell.Kind.PRETRAIN: Artifact.Kind.CHECKPOINT,
    Cell.Kind.SFT: Artifact.Kind.CHECKPOINT,
    Cell.Kind.CLASSIFY: Artifact.Kind.CHECKPOINT,
    Cell.Kind.GENERATE: Artifact.Kind.GENERATIONS,
}


def input_keys(kind: str) -> set[str]:
    return {spec.key for spec in CELL_INPUTS[kind]}


@dataclass(frozen=True)
class Output:
    """The identity of a cell's output: a corpus, or an artifact of its current run."""

    kind: str
    id: int
    sha256: str
    path: str
    name: str
    metadata: dict

    def as_input(self, cell_id: int) -> dict:
        return {"cell": cell_id, "kind": self.kind, "id": self.id, "sha256": self.sha256}


def dataset_output(dataset: Dataset) -> Output:
    return Output("dataset", dataset.pk, dataset.sha256, str(dataset.absolute_path), dataset.name,
                  {"format": dataset.format, "kind": dataset.kind})


def artifact_output(artifact: Artifact) -> Output:
    return Output("artifact", artifact.pk, artifact.sha256, str(artifact.absolute_path), artifact.name, artifact.metadata)


def cell_output(cell: Cell) -> Output | None:
    if cell.kind in (Cell.Kind.CORPUS, Cell.Kind.CLEAN):
        corpus = corpus_of(cell)
        return dataset_output(corpus) if corpus else None
    if cell.kind == Cell.Kind.MODEL:
        model = Artifact.objects.filter(team=cell.notebook.team, kind=Artifact.Kind.CHECKPOINT, pk=cell.config.get("model")).first()
        return artifact_output(model) if model else None
    artifact_kind = OUTPUT_ARTIFACT.get(cell.kind)
    run = cell.current_run
    if artifact_kind is None or run is None or run.status != Status.SUCCEEDED:
        return None
    artifact = run.artifacts.filter(kind=artifact_kind).order_by("-pk").first()
    return artifact_output(artifact) if artifact else None


def corpus_of(cell: Cell) -> Dataset | None:
    """The text dataset a corpus cell picked, or the one its clean cell's current run made."""
    texts = Dataset.objects.filter(team=cell.notebook.team, kind=Dataset.Kind.TEXT)
    if cell.kind == Cell.Kind.CORPUS:
        return texts.filter(pk=cell.config.get("corpus")).first()
    run = cell.current_run
    if run is None or run.status != Status.SUCCEEDED:
        return None
    return texts.filter(source_run=run).first()


def deleted_inputs(run: Run) -> list[str]:
    """Keys of the run's dataset inputs whose dataset was deleted since: the run keeps the record, not the data."""
    used = [(key, value["id"]) for key, value in run.frozen_inputs() if value.get("kind") == "dataset"]
    present = set(Dataset.objects.filter(team=run.team_id, pk__in=[pk for _, pk in used]).values_list("pk", flat=True))
    return [key for key, pk in used if pk not in present]


def _ids(value) -> list:
    if value in (None, "", []):
        return []
    return list(value) if isinstance(value, list) else [value]


def upstream_cell(cell: Cell, key: str, cell_id=None) -> Cell:
    """The cell named by input `key` (or `cell_id`), which must be a cell of the same notebook and kind."""
    spec = next(s for s in CELL_INPUTS[cell.kind] if s.key == key)
    cell_id = cell_id if cell_id is not None else cell.config.get(key)
    if not cell_id:
        raise ConfigError(key, f"choose a {spec.label} input")
    upstream = Cell.objects.filter(pk=cell_id, notebook=cell.notebook).exclude(pk=cell.pk).first()
    if upstream is None or upstream.kind not in spec.cells:
        raise ConfigError(key, f"cell {cell_id} is not a {spec.label} cell of this notebook")
    return upstream


def _resolve(cell: Cell, spec: InputSpec, ref) -> tuple[Output, dict]:
    """One input reference (a cell id or a dataset id) → its current output and its frozen form."""
    if spec.is_dataset:
        dataset = Dataset.objects.filter(team=cell.notebook.team, pk=ref).first()
        if dataset is None:
            raise ConfigError(spec.key, f"dataset {ref} does not exist (deleted?): choose another")
        if dataset.kind not in spec.dataset_kinds:
            raise ConfigError(spec.key, f"'{dataset.name}' is a {dataset.get_kind_display().lower()} dataset; "
                                        f"this cell needs {' or '.join(spec.dataset_kinds)} data")
        output = dataset_output(dataset)
        return output, output.as_input(None)
    upstream = upstream_cell(cell, spec.key, ref)
    output = cell_output(upstream)
    if output is None:
        raise ConfigError(spec.key, f"'{upstream.display_title}' has no output yet: run it first")
    return output, output.as_input(upstream.pk)


def resolve_inputs(cell: Cell) -> dict[str, Output | list[Output]]:
    """The current output of every input the cell names; ConfigError on the first that has none."""
    resolved = {}
    for spec in CELL_INPUTS[cell.kind]:
        refs = _ids(cell.config.get(spec.key))
        if not refs:
            if spec.optional:
                continue
            raise ConfigError(spec.key, f"choose a {spec.label} input")
        outputs = [_resolve(cell, spec, ref)[0] for ref in refs]
        resolved[spec.key] = outputs if spec.many else outputs[0]
    return resolved


def freeze_inputs(cell: Cell) -> dict[str, dict | list[dict]]:
    """The inputs as a run records them: which cell, which output, its hash."""
    frozen = {}
    for spec in CELL_INPUTS[cell.kind]:
        refs = _ids(cell.config.get(spec.key))
        if refs:
            items = [_resolve(cell, spec, ref)[1] for ref in refs]
            frozen[spec.key] = items if spec.many else items[0]
    return frozen


def stale_inputs(cell: Cell) -> list[str]:
    """Names of inputs whose upstream output changed since the cell's current run."""
    run = cell.current_run
    if run is None:
        return []
    specs = {spec.key: spec for spec in CELL_INPUTS[cell.kind]}
    stale = []
    for key, used in run.frozen_inputs():
        spec = specs.get(key)
        try:
            current = _resolve(cell, spec, used["id"] if spec.is_dataset else used["cell"])[1] if spec else None
        except ConfigError:
            current = None
        if current != used and key not in stale:
            stale.append(key)
    return stale


def training_config(cell: Cell, inputs: dict, output_dir: str):
    """The frozen training config of a run of `cell`. Raises ConfigError naming the field."""
    user_config = {k: v for k, v in cell.config.items() if k not in input_keys(cell.kind)}
    if cell.kind in (Cell.Kind.CLEAN, Cell.Kind.TOKENIZER, Cell.Kind.PRETRAIN):
        return _corpus_stage_config(cell, user_config, inputs, output_dir)
    if cell.kind in (Cell.Kind.SFT, Cell.Kind.CLASSIFY):
        config_class = SftConfig if cell.kind == Cell.Kind.SFT else ClassifyConfig
        dataset = inputs["dataset"]
        return config_class.from_dict({**user_config, "base_model": inputs["model_cell"].path, "dataset_path": dataset.path,
                                       "dataset_format": dataset.metadata["format"], "output_dir": output_dir})
    if cell.kind == Cell.Kind.GENERATE:
        models = [{"path": m.path, "label": m.name, "artifact": m.id} for m in inputs["model_cells"]]
        paths = {"models": models, "output_dir": output_dir}
        if dataset := inputs.get("dataset"):
            paths |= {"prompts_path": dataset.path, "prompts_format": dataset.metadata["format"]}
        return GenerateConfig.from_dict({**user_config, **paths})
    raise ConfigError("kind", f"a {cell.kind} cell does not run")


def _corpus_stage_config(cell: Cell, user_config: dict, inputs: dict, output_dir: str):
    corpus = inputs["corpus_cell"]
    if cell.kind == Cell.Kind.CLEAN:
        return CleanConfig.from_dict({**user_config, "input_path": corpus.path, "input_format": corpus.metadata["format"],
                                      "output_dir": output_dir})
    paths = {"corpus_path": corpus.path, "corpus_format": corpus.metadata["format"], "output_dir": output_dir}
    if cell.kind == Cell.Kind.TOKENIZER:
        return TokenizerConfig.from_dict({**user_config, **paths})
    if base := inputs.get("model_cell"):
        # Continued pretraining: the base's weights and its own tokenizer (a new one would not match them).
        paths |= {"init_from": base.path, "tokenizer_path": str(Path(base.path) / "tokenizer.json")}
    elif "tokenizer_cell" in inputs:
        paths["tokenizer_path"] = inputs["tokenizer_cell"].path
    else:
        raise ConfigError("tokenizer_cell", "choose a tokenizer input, or a base model to continue pretraining")
    config = PretrainConfig.from_dict({**user_config, **paths})
    if "tokenizer_cell" in inputs and base is None:
        check_data_fits(config, inputs)
    return config


def check_data_fits(config: PretrainConfig, inputs: dict[str, Output]) -> None:
    """Refuse a batch larger than the corpus before queueing, when the tokenizer counted this corpus.

    The count comes from the tokenizer run (tokens of the same corpus under the same tokenizer), so
    the estimate is close; the training process checks exactly and fails with the same field.
    """
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


def run_output_dir(run_id: int) -> str:
    return str(settings.LAB_DATA_DIR / "runs" / str(run_id))
