"""What each kind of cell takes as input, how it becomes a run, and what it outputs.

Cells name their inputs as upstream cells (`corpus_cell`, `tokenizer_cell`); at launch these are
resolved to the upstream cell's current output and frozen into the run's `inputs`. A cell is stale
when an upstream cell's current output is no longer the one its current run used.
"""

from dataclasses import dataclass

from django.conf import settings

from lab.datasets.models import Dataset
from lab.notebooks.models import Cell
from lab.runs.models import Artifact, Run, Status
from training.clean import CleanConfig
from training.config import ConfigError, PretrainConfig, TokenizerConfig

# Which upstream cells can feed each input key: a corpus is uploaded, or the output of a clean cell.
INPUT_KINDS = {"corpus_cell": (Cell.Kind.CORPUS, Cell.Kind.CLEAN), "tokenizer_cell": (Cell.Kind.TOKENIZER,)}
INPUT_LABELS = {"corpus_cell": "corpus", "tokenizer_cell": "tokenizer"}
CELL_INPUTS = {
    Cell.Kind.NOTE: (),
    Cell.Kind.CORPUS: (),
    Cell.Kind.CLEAN: ("corpus_cell",),
    Cell.Kind.TOKENIZER: ("corpus_cell",),
    Cell.Kind.PRETRAIN: ("corpus_cell", "tokenizer_cell"),
}
RUNNABLE = {Cell.Kind.CLEAN: ("clean", "cpu"), Cell.Kind.TOKENIZER: ("tokenizer", "cpu"), Cell.Kind.PRETRAIN: ("pretrain", "gpu")}
OUTPUT_ARTIFACT = {Cell.Kind.TOKENIZER: Artifact.Kind.TOKENIZER, Cell.Kind.PRETRAIN: Artifact.Kind.CHECKPOINT}


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


def cell_output(cell: Cell) -> Output | None:
    if cell.kind in (Cell.Kind.CORPUS, Cell.Kind.CLEAN):
        corpus = corpus_of(cell)
        if corpus is None:
            return None
        return Output("corpus", corpus.pk, corpus.sha256, str(corpus.absolute_path), corpus.name, {"format": corpus.format})
    artifact_kind = OUTPUT_ARTIFACT.get(cell.kind)
    run = cell.current_run
    if artifact_kind is None or run is None or run.status != Status.SUCCEEDED:
        return None
    artifact = run.artifacts.filter(kind=artifact_kind).order_by("-pk").first()
    if artifact is None:
        return None
    return Output("artifact", artifact.pk, artifact.sha256, str(artifact.absolute_path), artifact.name, artifact.metadata)


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
    """Keys of the run's corpus inputs whose dataset was deleted since: the run keeps the record, not the data."""
    used = {key: value["id"] for key, value in run.inputs.items() if value.get("kind") == "corpus"}
    present = set(Dataset.objects.filter(team=run.team_id, pk__in=used.values()).values_list("pk", flat=True))
    return [key for key, pk in used.items() if pk not in present]


def upstream_cell(cell: Cell, key: str) -> Cell:
    """The cell named by input `key`, which must be an earlier cell of the same notebook and kind."""
    cell_id = cell.config.get(key)
    if not cell_id:
        raise ConfigError(key, "choose an input cell")
    upstream = Cell.objects.filter(pk=cell_id, notebook=cell.notebook).first()
    if upstream is None or upstream.kind not in INPUT_KINDS[key]:
        raise ConfigError(key, f"cell {cell_id} is not a {INPUT_LABELS[key]} cell of this notebook")
    return upstream


def resolve_inputs(cell: Cell) -> dict[str, Output]:
    resolved = {}
    for key in CELL_INPUTS[cell.kind]:
        upstream = upstream_cell(cell, key)
        output = cell_output(upstream)
        if output is None:
            raise ConfigError(key, f"'{upstream.display_title}' has no output yet: run it first")
        resolved[key] = output
    return resolved


def stale_inputs(cell: Cell) -> list[str]:
    """Names of inputs whose upstream output changed since the cell's current run."""
    run = cell.current_run
    if run is None:
        return []
    stale = []
    for key, used in run.inputs.items():
        try:
            current = cell_output(upstream_cell(cell, key))
        except ConfigError:
            current = None
        if current is None or current.as_input(used["cell"]) != used:
            stale.append(key)
    return stale


def training_config(cell: Cell, inputs: dict[str, Output], output_dir: str):
    """The frozen training config of a run of `cell`. Raises ConfigError naming the field."""
    user_config = {k: v for k, v in cell.config.items() if k not in CELL_INPUTS[cell.kind]}
    corpus = inputs["corpus_cell"]
    if cell.kind == Cell.Kind.CLEAN:
        return CleanConfig.from_dict({**user_config, "input_path": corpus.path, "input_format": corpus.metadata["format"],
                                      "output_dir": output_dir})
    paths = {"corpus_path": corpus.path, "corpus_format": corpus.metadata["format"], "output_dir": output_dir}
    if cell.kind == Cell.Kind.TOKENIZER:
        return TokenizerConfig.from_dict({**user_config, **paths})
    if cell.kind == Cell.Kind.PRETRAIN:
        config = PretrainConfig.from_dict({**user_config, **paths, "tokenizer_path": inputs["tokenizer_cell"].path})
        check_data_fits(config, inputs)
        return config
    raise ConfigError("kind", f"a {cell.kind} cell does not run")


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
