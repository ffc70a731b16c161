"""What each kind of cell takes as input, how it becomes a run, and what it outputs.

Cells name their inputs as upstream cells (`corpus_cell`, `model_cell`, …) or as team datasets
(`dataset`); at launch these are resolved to the current outputs and frozen into the run's `inputs`. A cell is stale
when an upstream cell's current output is no longer the one its current run used.
"""

from dataclasses import dataclass, replace

from lab.datasets.models import Dataset
from lab.datasets.versions import clean_split
from lab.notebooks.cell_kinds import CELL_KINDS, SET_BY_LAB, InputSpec
from lab.notebooks.models import Cell
from lab.runs.models import Artifact, Status
from training.config import ConfigError

# A view of the declarations (lab/notebooks/cell_kinds.py) for lab/runs/actions.py: kind → (stage, queue).
RUNNABLE = {kind: (k.stage, k.queue) for kind, k in CELL_KINDS.items() if k.runnable}


def input_keys(kind: str) -> set[str]:
    return CELL_KINDS[kind].input_keys


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
    """What the cell gives the cells below: what its kind declares (`CellKind.output`), else the
    artifact its current run made, once the run succeeded."""
    kind = CELL_KINDS[cell.kind]
    if kind.output_of is not None:
        return kind.output_of(cell)
    artifact_kind = kind.output_artifact
    run = cell.current_run
    if artifact_kind is None or run is None or run.status != Status.SUCCEEDED:
        return None
    artifact = run.artifacts.filter(kind=artifact_kind).order_by("-pk").first()
    return artifact_output(artifact) if artifact else None


def corpus_output(cell: Cell) -> Output | None:
    """A corpus cell's picked text dataset, or the version its clean cell's current run made."""
    corpus = corpus_of(cell)
    return dataset_output(corpus) if corpus else None


def model_output(cell: Cell) -> Output | None:
    """A base-model cell's picked checkpoint of the team."""
    model = Artifact.objects.filter(team=cell.notebook.team, kind=Artifact.Kind.CHECKPOINT, pk=cell.config.get("model")).first()
    return artifact_output(model) if model else None


def settings_output(cell: Cell, key: str) -> Output:
    """An evaluate cell as a training cell's input (`settings_of`): its dataset, with the cell's own
    settings in the metadata; it need not have run."""
    dataset = Dataset.objects.filter(team=cell.notebook.team, pk=cell.config.get("dataset")).first()
    if dataset is None:
        raise ConfigError(key, f"'{cell.display_title}' has no dataset: choose one in it first")
    settings = {k: v for k, v in cell.config.items() if k not in input_keys(cell.kind) and k not in SET_BY_LAB}
    output = dataset_output(dataset)
    return replace(output, name=cell.display_title, metadata={**output.metadata, "cell": cell.pk, "settings": settings})


def corpus_of(cell: Cell) -> Dataset | None:
    """The text dataset a corpus cell picked, or the one its clean cell's current run made."""
    texts = Dataset.objects.filter(team=cell.notebook.team, kind=Dataset.Kind.TEXT)
    if cell.kind == Cell.Kind.CORPUS:
        return texts.filter(pk=cell.config.get("corpus")).first()
    run = cell.current_run
    if run is None or run.status != Status.SUCCEEDED:
        return None
    return clean_split(run, "train")


def _ids(value) -> list:
    if value in (None, "", []):
        return []
    return list(value) if isinstance(value, list) else [value]


def upstream_cell(cell: Cell, key: str, cell_id=None) -> Cell:
    """The cell named by input `key` (or `cell_id`), which must be a cell of the same notebook and kind."""
    spec = next(s for s in CELL_KINDS[cell.kind].inputs if s.key == key)
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
    output = settings_output(upstream, spec.key) if spec.settings_of else cell_output(upstream)
    if output is None:
        raise ConfigError(spec.key, f"'{upstream.display_title}' has no output yet: run it first")
    return output, output.as_input(upstream.pk)


def resolve_inputs(cell: Cell) -> dict[str, Output | list[Output]]:
    """The current output of every input the cell names; ConfigError on the first that has none."""
    return resolve_and_freeze_inputs(cell)[0]


def resolve_and_freeze_inputs(cell: Cell) -> tuple[dict[str, Output | list[Output]], dict[str, dict | list[dict]]]:
    """Each input resolved once: (its current output, the form a run records: which cell, which output,
    its hash), by input key. ConfigError on the first input that has none."""
    resolved, frozen = {}, {}
    for spec in CELL_KINDS[cell.kind].inputs:
        refs = _ids(cell.config.get(spec.key))
        if not refs:
            if spec.optional:
                continue
            raise ConfigError(spec.key, f"choose a {spec.label} input")
        pairs = [_resolve(cell, spec, ref) for ref in refs]
        outputs, items = [output for output, _ in pairs], [item for _, item in pairs]
        resolved[spec.key], frozen[spec.key] = (outputs, items) if spec.many else (outputs[0], items[0])
    return resolved, frozen


def stale_inputs(cell: Cell) -> list[str]:
    """Names of inputs whose upstream output changed since the cell's current run."""
    run = cell.current_run
    if run is None:
        return []
    specs = {spec.key: spec for spec in CELL_KINDS[cell.kind].inputs}
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
    kind = CELL_KINDS[cell.kind]
    if not kind.runnable:
        raise ConfigError("kind", f"a {cell.kind} cell does not run")
    config = kind.config_class.from_dict({**kind.stage_settings(cell.config), **kind.paths(inputs, output_dir)})
    if kind.check:
        kind.check(config, inputs)
    return config


