"""Every cell kind is declared once (lab/notebooks/cell_kinds.py), and the declarations hold together:
each `Cell.Kind` has one, a runnable kind names a training stage, its basic fields are its stage's."""

import dataclasses

import pytest

from lab.notebooks.cell_kinds import CELL_KINDS, SET_BY_LAB
from lab.notebooks.models import Cell
from lab.runs.models import Artifact
from training.stages import STAGES


def test_every_cell_kind_is_declared_once():
    assert list(CELL_KINDS) == list(Cell.Kind.values)
    assert all(CELL_KINDS[kind].kind == kind for kind in CELL_KINDS)


def test_a_runnable_kind_runs_a_stage_of_the_training_registry():
    runnable = {kind: k for kind, k in CELL_KINDS.items() if k.runnable}
    assert set(runnable) == {"clean", "tokenizer", "pretrain", "sft", "reward", "classify", "dpo", "rl", "generate", "evaluate"}
    for k in runnable.values():
        assert k.training_stage is STAGES[k.stage]
        assert k.paths is not None, k.kind
        assert k.queue == ("cpu" if k.kind in ("clean", "tokenizer") else "gpu")


def test_the_output_artifact_is_the_stages_own_output_kind():
    outputs = {kind: k.output_artifact for kind, k in CELL_KINDS.items() if k.output_artifact}
    assert outputs == {"tokenizer": Artifact.Kind.TOKENIZER, "pretrain": Artifact.Kind.CHECKPOINT,
                       "reward": Artifact.Kind.CHECKPOINT,
                       "sft": Artifact.Kind.CHECKPOINT, "classify": Artifact.Kind.CHECKPOINT, "dpo": Artifact.Kind.CHECKPOINT,
                       "rl": Artifact.Kind.CHECKPOINT,
                       "generate": Artifact.Kind.GENERATIONS, "evaluate": Artifact.Kind.EVALUATION}
    assert CELL_KINDS["clean"].output_artifact is None  # a new version of a dataset, not an artifact


def test_basic_fields_and_options_are_fields_the_form_shows():
    for k in CELL_KINDS.values():
        if not k.runnable:
            assert not k.basic and not k.options, k.kind
            continue
        shown = {f.name for f in dataclasses.fields(k.config_class)} - SET_BY_LAB
        assert set(k.basic) <= shown, (k.kind, set(k.basic) - shown)
        assert set(k.options) <= shown, (k.kind, set(k.options) - shown)
        assert k.basic, f"{k.kind} declares no basic fields"


def test_every_kind_has_its_template_partial():
    from django.template.loader import get_template

    for k in CELL_KINDS.values():
        assert get_template(k.partial).origin.name.endswith(f"templates/notebooks/cells/{k.kind}.html")


@pytest.mark.django_db
def test_running_a_cell_resolves_each_input_once_and_the_run_owns_its_folder(cast, sample_data, settings, monkeypatch):
    from lab.notebooks import kinds
    from lab.notebooks.actions import start_cell_run
    from tests.builders import shakespeare_notebook

    cells = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    resolved = []
    real = kinds._resolve
    monkeypatch.setattr(kinds, "_resolve", lambda cell, spec, ref: resolved.append(spec.key) or real(cell, spec, ref))
    run = start_cell_run(cells["tokenizer"], cast.alice)

    assert resolved == ["corpus_cell"]  # the tokenizer cell's one input, resolved once
    assert run.config["output_dir"] == str(settings.LAB_DATA_DIR / "runs" / str(run.pk))
    assert run.inputs["corpus_cell"]["cell"] == cells["corpus"].pk and cells["tokenizer"].current_run_id == run.pk
