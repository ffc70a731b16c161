"""`make up` seeds a demo notebook: it must be there once however often `make up` runs, and every
cell's config must be one the lab accepts."""

import io

import pytest
from django.core.management import call_command

from lab.notebooks.kinds import resolve_inputs, training_config
from lab.notebooks.models import Cell, Notebook

pytestmark = pytest.mark.django_db


def test_it_seeds_one_demo_notebook_whose_cells_the_lab_accepts(sample_data):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())

    notebook = Notebook.objects.get()
    assert [c.kind for c in notebook.cells.all()] == ["note", "corpus", "clean", "tokenizer", "pretrain"]
    assert "Log in as demo / demo-lab-2026" in out.getvalue()
    for kind in (Cell.Kind.CLEAN, Cell.Kind.TOKENIZER):
        cell = notebook.cells.get(kind=kind)
        training_config(cell, resolve_inputs(cell), output_dir="/tmp/seed-check")  # raises on a bad config
