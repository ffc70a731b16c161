"""Cell config forms, built from the training config dataclasses so fields, defaults and help
texts are written once (in training/config.py) and the web validates exactly what training will."""

import ast
import dataclasses
import functools
import inspect
import typing

from django import forms

from lab.datasets.models import Dataset
from lab.notebooks.kinds import CELL_INPUTS, INPUT_KINDS, INPUT_LABELS
from lab.notebooks.models import Cell
from training import presets
from training.clean import CleanConfig
from training.config import ConfigError, PretrainConfig, TokenizerConfig

CONFIG_CLASSES = {Cell.Kind.CLEAN: CleanConfig, Cell.Kind.TOKENIZER: TokenizerConfig, Cell.Kind.PRETRAIN: PretrainConfig}
# Set by the lab from the cell's inputs, not typed by the user.
RESOLVED_FIELDS = {"corpus_path", "corpus_format", "input_path", "input_format", "tokenizer_path", "output_dir",
                   "resume_from", "init_from"}
CHOICES = {
    "algorithm": [("bpe", "byte-level BPE"), ("unigram", "Unigram (SentencePiece-style)"), ("wordpiece", "WordPiece")],
    "preset": [(name, name) for name in presets.PRESETS],
    "precision": [("fp32", "fp32"), ("bf16", "bf16 autocast")],
    "device": [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda")],
}
# Text whose whitespace is part of its meaning (a Jinja chat template renders it).
MULTILINE = {"chat_template"}
PLACEHOLDER_PATHS = {"corpus_path": "/validate/corpus", "tokenizer_path": "/validate/tokenizer.json", "output_dir": "/validate/run"}
CLEAN_PLACEHOLDER_PATHS = {"input_path": "/validate/corpus", "output_dir": "/validate/run"}


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The docstring under each dataclass field (the litgpt/jsonargparse convention)."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
            docs[node.target.id] = following.value.value.strip()
    return docs


def _form_field(f: dataclasses.Field, hint, help_text: str) -> forms.Field:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    label = f.name.replace("_", " ")
    if f.name in CHOICES:
        return forms.ChoiceField(choices=CHOICES[f.name], initial=default, label=label, help_text=help_text)
    if hint is bool:
        return forms.BooleanField(required=False, initial=default, label=label, help_text=help_text)
    if hint is int:
        return forms.IntegerField(initial=default, label=label, help_text=help_text)
    if hint is float:
        return forms.FloatField(initial=default, label=label, help_text=help_text)
    if f.name in MULTILINE:
        return forms.CharField(initial=default, required=False, strip=False, label=label, help_text=help_text,
                               widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}))
    if typing.get_origin(hint) is list:
        return forms.CharField(initial=", ".join(default), label=label, help_text=help_text + " Comma-separated.")
    return forms.CharField(initial=default, required=False, label=label, help_text=help_text)


class CellConfigForm(forms.Form):
    """Base: input pickers for upstream cells plus the stage's config fields."""

    config_class = None

    def __init__(self, *args, cell: Cell, **kwargs):
        initial = {**cell.config, **{k: ", ".join(v) for k, v in cell.config.items() if isinstance(v, list)}}
        super().__init__(*args, initial=initial, **kwargs)
        self.cell = cell
        for key in CELL_INPUTS[cell.kind]:
            candidates = cell.notebook.cells.filter(kind__in=INPUT_KINDS[key]).exclude(pk=cell.pk)
            self.fields[key] = forms.TypedChoiceField(
                coerce=int, label=INPUT_LABELS[key] + " input",
                choices=[(c.pk, c.display_title) for c in candidates],
                help_text="The upstream cell whose current output this cell uses.",
            )
        hints = typing.get_type_hints(self.config_class)
        docs = field_docs(self.config_class)
        for f in dataclasses.fields(self.config_class):
            if f.name not in RESOLVED_FIELDS:
                self.fields[f.name] = _form_field(f, hints[f.name], docs.get(f.name, ""))

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            if typing.get_origin(typing.get_type_hints(self.config_class).get(name)) is list:
                data[name] = [item.strip() for item in value.split(",") if item.strip()]
        config = {k: v for k, v in data.items() if k not in CELL_INPUTS[self.cell.kind]}
        try:
            self.config_class.from_dict({**config, **PLACEHOLDER_PATHS_FOR[self.config_class]})
        except ConfigError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


class CleanForm(CellConfigForm):
    config_class = CleanConfig


class TokenizerForm(CellConfigForm):
    config_class = TokenizerConfig


class PretrainForm(CellConfigForm):
    config_class = PretrainConfig


PLACEHOLDER_PATHS_FOR = {
    CleanConfig: CLEAN_PLACEHOLDER_PATHS,
    TokenizerConfig: {k: v for k, v in PLACEHOLDER_PATHS.items() if k != "tokenizer_path"},
    PretrainConfig: PLACEHOLDER_PATHS,
}


class NoteForm(forms.Form):
    markdown = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)


class CorpusCellForm(forms.Form):
    corpus = forms.TypedChoiceField(coerce=int, label="corpus", help_text="One of your team's text datasets.")

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)
        corpora = Dataset.objects.for_team(cell.notebook.team).filter(kind=Dataset.Kind.TEXT)
        self.fields["corpus"].choices = [(c.pk, f"{c.name} ({c.n_records} documents)") for c in corpora]


FORMS = {
    Cell.Kind.NOTE: NoteForm,
    Cell.Kind.CORPUS: CorpusCellForm,
    Cell.Kind.CLEAN: CleanForm,
    Cell.Kind.TOKENIZER: TokenizerForm,
    Cell.Kind.PRETRAIN: PretrainForm,
}
