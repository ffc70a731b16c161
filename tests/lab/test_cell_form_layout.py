"""How a cell's form is laid out for a person (lab/notebooks/form_layout.py): every config field has a
label in words, help text is escaped text with `code` as <code>, basic fields come first and a changed
or refused advanced value shows."""

import dataclasses

import pytest

from lab.notebooks.cell_kinds import CELL_KINDS, SET_BY_LAB
from lab.notebooks.form_layout import LABELS, help_html, sections
from lab.notebooks.forms import FORMS, field_docs
from lab.notebooks.models import Cell, Notebook


def test_every_field_a_form_shows_has_a_label_in_words():
    for kind in CELL_KINDS.values():
        if kind.runnable:
            shown = {f.name for f in dataclasses.fields(kind.config_class)} - SET_BY_LAB
            assert shown <= set(LABELS), (kind.kind, shown - set(LABELS))
    assert all("_" not in label and label[0].isupper() for label in LABELS.values())


def test_every_field_a_form_shows_has_its_help_text_inherited_ones_too():
    for kind in CELL_KINDS.values():
        if kind.runnable:
            shown = {f.name for f in dataclasses.fields(kind.config_class)} - SET_BY_LAB
            docs = field_docs(kind.config_class)
            assert shown <= set(docs), (kind.kind, shown - set(docs))
    assert field_docs(CELL_KINDS["sft"].config_class)["beta1"]  # declared once, on the training-loop base


@pytest.mark.parametrize("text, html", [
    ("Replace e-mail addresses with `<EMAIL>`.", "Replace e-mail addresses with <code>&lt;EMAIL&gt;</code>."),
    ("scaled by `lora_alpha / lora_r`", "scaled by <code>lora_alpha / lora_r</code>"),
    ("<script>alert(1)</script> & more", "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
    ("an unpaired ` backtick", "an unpaired  backtick"),
    ("`a` and `b` then `c", "<code>a</code> and <code>b</code> then c"),
])
def test_help_text_is_escaped_text_with_code(text, html):
    assert help_html(text) == html


@pytest.fixture
def sft_cell(cast):
    notebook = Notebook.objects.create(team=cast.team, title="Layout", created_by=cast.alice)
    return Cell.objects.create(notebook=notebook, kind=Cell.Kind.SFT, config={"method": "lora", "lr": 1e-4, "beta2": 0.98})


def _names(rows):
    return [row.field.name for row in rows]


@pytest.mark.django_db
def test_inputs_and_basic_fields_first_the_rest_advanced_with_changes_counted(sft_cell):
    layout = sections(FORMS[sft_cell.kind](cell=sft_cell), CELL_KINDS[sft_cell.kind])
    assert _names(layout.basic) == ["model_cell", "dataset", "eval_cells", "method", "max_steps", "lr", "batch_size", "lora_r"]
    assert "beta2" in _names(layout.advanced) and "chat_template" in _names(layout.advanced)
    assert [row.field.name for row in layout.advanced if row.changed] == ["beta2"]
    assert layout.changed == 1 and not layout.open
    assert str(layout.basic[5].field.label) == "Learning rate"


@pytest.mark.django_db
def test_a_refused_advanced_value_opens_advanced(sft_cell):
    form = FORMS[sft_cell.kind]({"method": "lora", "beta2": "lots"}, cell=sft_cell)
    assert not form.is_valid()
    layout = sections(form, CELL_KINDS[sft_cell.kind])
    assert layout.open
    assert next(row for row in layout.advanced if row.field.name == "beta2").changed


@pytest.mark.django_db
def test_a_form_not_made_from_a_config_shows_every_field_as_basic(cast):
    notebook = Notebook.objects.create(team=cast.team, title="Layout", created_by=cast.alice)
    cell = Cell.objects.create(notebook=notebook, kind=Cell.Kind.ANNOTATE)
    layout = sections(FORMS[cell.kind](cell=cell), CELL_KINDS[cell.kind])
    assert set(_names(layout.basic)) == {"generate_cell", "name", "guidelines", "annotators", "overlap"}
    assert layout.advanced == [] and layout.changed == 0
