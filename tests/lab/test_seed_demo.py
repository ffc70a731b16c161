"""`make up` seeds a demo notebook: it must be there once however often `make up` runs, and every
cell's config must be one the lab accepts."""

import io

import pytest
from django.core.management import call_command

from lab.notebooks.forms import FORMS
from lab.notebooks.kinds import resolve_inputs, training_config
from lab.notebooks.models import Cell, Notebook

pytestmark = pytest.mark.django_db


def test_it_seeds_one_demo_notebook_whose_cells_the_lab_accepts(sample_data):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())

    notebook = Notebook.objects.get()
    assert [c.kind for c in notebook.cells.all()] == [
        "note", "corpus", "clean", "tokenizer", "pretrain", "sft", "classify", "generate", "annotate"]
    assert "Log in as demo / demo-lab-2026" in out.getvalue()
    for kind in (Cell.Kind.CLEAN, Cell.Kind.TOKENIZER):
        cell = notebook.cells.get(kind=kind)
        training_config(cell, resolve_inputs(cell), output_dir="/tmp/seed-check")  # raises on a bad config
    # Cells downstream of the pretrain run cannot resolve their inputs until it has run; their forms
    # must still take the seeded config as it is (every key known, every value valid on its own).
    for cell in notebook.cells.exclude(kind__in=(Cell.Kind.NOTE, Cell.Kind.CORPUS)):
        blank = FORMS[cell.kind](cell=cell)  # what the browser shows: the saved config over the defaults
        shown = {name: blank.get_initial_for_field(field, name) for name, field in blank.fields.items()}
        form = FORMS[cell.kind](data=_as_form_data(shown), cell=cell)
        assert form.is_valid(), (cell.kind, form.errors)
        assert set(cell.config) <= set(form.fields), (cell.kind, set(cell.config) - set(form.fields))


def _as_form_data(config: dict) -> dict:
    """The fields as a browser posts them: an unchecked box is absent, a None is empty."""
    return {key: "on" if value is True else ("" if value is None else value)
            for key, value in config.items() if value is not False}
