"""Cell config forms, built from the training config dataclasses so fields, defaults and help
texts are written once (in training/config.py) and the web validates exactly what training will."""

import dataclasses
import json
import re
import types
import typing

from django import forms
from django.utils.module_loading import import_string
from django.utils.text import capfirst

from lab.datasets.models import Dataset
from lab.notebooks.cell_kinds import CELL_KINDS, SET_BY_LAB, InputSpec
from lab.notebooks.form_layout import LABELS, help_html
from lab.notebooks.kinds import input_keys, resolve_inputs, training_config
from lab.notebooks.models import Cell
from lab.runs.models import Artifact
from training import json_limits, presets
from training.config import ConfigError, field_docs
from training.config_checks import check_limits, refuse_unknown_keys

CHOICES = {
    "algorithm": [("bpe", "byte-level BPE"), ("unigram", "Unigram (SentencePiece-style)"), ("wordpiece", "WordPiece")],
    "preset": [(name, name) for name in presets.PRESETS],
    "device": [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda")],
    "sharding": [("ddp", "DDP: a whole model on each device"), ("fsdp", "FSDP: the model split over the devices (GPUs)")],
}
# Words for the values of fields whose allowed values differ between stages (a kind's `options`).
OPTION_LABELS = {
    "precision": {"auto": "auto (bf16 where the GPU has it)", "fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 mixed"},
    "method": {"full": "full fine-tuning", "lora": "LoRA", "qlora": "QLoRA (4-bit base, GPU)"},
    "loss_on": {"assistant": "assistant tokens only", "all": "every token"},
    "schedule": {"cosine": "cosine", "linear": "linear", "constant": "constant"},
    "loss_type": {"sigmoid": "sigmoid (DPO)", "ipo": "IPO", "hinge": "hinge (SLiC)", "robust": "robust DPO",
                  "orpo": "ORPO (no reference)", "simpo": "SimPO (no reference)", "kto": "KTO (unpaired labels)"},
    "task": {"auto": "auto (from the dataset's kind)", "perplexity": "perplexity", "multiple_choice": "multiple choice",
             "generation": "generation (exact match)", "classification": "classification"},
    "mc_style": {"text": "each choice's text", "letters": "A, B, C, D (MMLU's prompt)"},
}
# Text whose whitespace is part of its meaning (a Jinja chat template renders it).
MULTILINE = {"chat_template"}
# Lists of sentences, which hold commas themselves: one item per line.
LINE_LISTS = {"prompts", "sample_prompts"}
JSON_ROWS = 6


def _is_json_list(hint) -> bool:
    """A list of objects (rl's rewards): edited as JSON text."""
    return typing.get_origin(hint) is list and typing.get_args(hint) == (dict,)


def _form_field(stage_options: dict, f: dataclasses.Field, hint, doc: str) -> forms.Field:
    field = _typed_field(stage_options, f, hint, doc)
    field.label = LABELS.get(f.name, f.name.replace("_", " "))
    field.help_text = help_html(field.help_text)
    return field


def _typed_field(stage_options: dict, f: dataclasses.Field, hint, help_text: str) -> forms.Field:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if options := stage_options.get(f.name):
        choices = [(value, OPTION_LABELS[f.name].get(value, value)) for value in options]
        return forms.ChoiceField(choices=choices, initial=default, help_text=help_text)
    if f.name in CHOICES:
        return forms.ChoiceField(choices=CHOICES[f.name], initial=default, help_text=help_text)
    if hint is bool:
        return forms.BooleanField(required=False, initial=default, help_text=help_text)
    if hint is int:
        return forms.IntegerField(initial=default, help_text=help_text)
    if hint is float:
        return forms.FloatField(initial=default, help_text=help_text)
    if f.name in MULTILINE:
        return forms.CharField(initial=default, required=False, strip=False, help_text=help_text,
                               widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}))
    if _is_json_list(hint):
        return forms.CharField(initial=json.dumps(default), help_text=help_text + " JSON: a list of objects.",
                               widget=forms.Textarea(attrs={"rows": JSON_ROWS, "class": "mono"}))
    if typing.get_origin(hint) is list and f.name in LINE_LISTS:
        return forms.CharField(initial="\n".join(default), required=False, help_text=help_text + " One per line.",
                               widget=forms.Textarea(attrs={"rows": 3}))
    if typing.get_origin(hint) is list:
        return forms.CharField(initial=", ".join(default), help_text=help_text + " Comma-separated.")
    return forms.CharField(initial=default, required=False, help_text=help_text)


MAX_DEVICES = 16
"""The most devices a run may ask for: one machine's (runs across machines are not built)."""


def devices_field() -> forms.IntegerField:
    return forms.IntegerField(
        min_value=1, max_value=MAX_DEVICES, initial=1, label=LABELS["devices"],
        help_text=help_html("How many devices the run trains on at once (GPUs; on a CPU worker, processes), one "
                            "process each under torchrun; `batch_size` stays the whole batch, split over them. "
                            "The run waits for a worker with that many free."),
    )


class CellConfigForm(forms.Form):
    """The form of a cell kind that runs a stage: its input pickers, then the stage's config fields."""

    def __init__(self, *args, cell: Cell, **kwargs):
        kind = CELL_KINDS[cell.kind]
        self.config_class = kind.config_class
        # Text lists (sample prompts) edit as comma-separated text; id lists (several models) stay lists.
        hints = typing.get_type_hints(self.config_class)
        self.json_lists = {name for name, hint in hints.items() if _is_json_list(hint)}
        typed_lists = {k: json.dumps(v) if k in self.json_lists else ("\n" if k in LINE_LISTS else ", ").join(v)
                       for k, v in cell.config.items() if isinstance(v, list) and k not in input_keys(cell.kind)}
        initial = {**cell.config, **typed_lists}
        super().__init__(*args, initial=initial, **kwargs)
        self.cell = cell
        for spec in kind.inputs:
            self.fields[spec.key] = input_field(cell, spec)
        docs = field_docs(self.config_class)
        for f in dataclasses.fields(self.config_class):
            if f.name not in SET_BY_LAB:
                self.fields[f.name] = _form_field(kind.options, f, hints[f.name], docs.get(f.name, ""))
        if kind.multi_device:
            self.fields["devices"] = devices_field()
        # Lists of strings, edited as text: one item a line (LINE_LISTS) or comma-separated.
        self.text_lists = {name for name in self.fields
                           if typing.get_origin(hints.get(name)) is list and name not in self.json_lists}

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            if name in self.text_lists:
                data[name] = [item.strip() for item in value.split("\n" if name in LINE_LISTS else ",") if item.strip()]
            elif name in self.json_lists:
                try:
                    data[name] = json_limits.loads(value)
                except ValueError as exc:
                    self.add_error(name, f"is not JSON: {exc}")
                    return data
        try:
            self.check_config(data)
        except ConfigError as exc:
            # A field inside a field (`rewards[1].pattern`) is shown on its field, named in full.
            outer = re.split(r"[\[.]", exc.field, maxsplit=1)[0]
            if outer not in self.fields:
                self.add_error(None, exc.message)
            else:
                self.add_error(outer, exc.message if outer == exc.field else str(exc))
        return data

    def check_config(self, data: dict) -> None:
        """Validate as the run will: against the inputs' current outputs (the model's context length,
        the dataset's kind), or, while an upstream cell has no output yet, with stand-in paths for
        the stages whose configs do not read their inputs."""
        probe = Cell(pk=self.cell.pk, notebook=self.cell.notebook, kind=self.cell.kind, config=data)
        try:
            inputs = resolve_inputs(probe)
        except ConfigError:
            inputs = None  # an input without output yet: "Save and run" says so; saving is fine
        if inputs is not None:
            training_config(probe, inputs, output_dir="/validate/run")
        elif placeholders := CELL_KINDS[self.cell.kind].placeholder_paths:
            self.config_class.from_dict({**CELL_KINDS[self.cell.kind].stage_settings(data), **placeholders})
        else:
            check_limits(types.SimpleNamespace(**data))  # the stage's other checks read its inputs' files


def input_field(cell: Cell, spec: InputSpec) -> forms.Field:
    """A picker of the upstream cells (or the team's datasets) that can feed `spec`."""
    if spec.is_dataset:
        datasets = Dataset.objects.for_team(cell.notebook.team).filter(kind__in=spec.dataset_kinds)
        choices = [(d.pk, f"{d.name} ({d.n_records} records)") for d in datasets]
        help_text = f"One of your team's {' or '.join(spec.dataset_kinds)} datasets."
    else:
        candidates = cell.notebook.cells.filter(kind__in=spec.cells).exclude(pk=cell.pk)
        choices = [(c.pk, c.display_title) for c in candidates]
        help_text = ("Evaluate cells whose dataset and settings score each checkpoint this run saves (they need not have run)."
                     if spec.settings_of else "The upstream cell whose current output this cell uses.")
    if spec.many:
        return forms.TypedMultipleChoiceField(coerce=int, choices=choices, label=capfirst(spec.label), required=not spec.optional,
                                              help_text=help_text + (" Optional: pick any." if spec.optional else " Pick one or more."))
    if spec.optional:
        choices = [("", "—")] + choices
        help_text += " Optional."
    return forms.TypedChoiceField(coerce=int, choices=choices, label=capfirst(spec.label), help_text=help_text,
                                  required=not spec.optional, empty_value=None)


class NoteForm(forms.Form):
    markdown = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False, strip=False)

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)


class AnnotateForm(forms.Form):
    """A campaign over the generate cell's pairs: who judges, how many judge each pair, the guidelines."""

    name = forms.CharField(max_length=200, required=False, help_text="The campaign's name; defaults to the cell's title.")
    guidelines = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}),
                                 help_text="Markdown, shown to annotators above every pair.")
    annotators = forms.TypedMultipleChoiceField(coerce=int, required=False, help_text="Members of the team who judge.")
    overlap = forms.IntegerField(min_value=1, max_value=20, initial=2, help_text="How many annotators judge each pair.")

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)
        self.fields["generate_cell"] = input_field(cell, CELL_KINDS[Cell.Kind.ANNOTATE].inputs[0])
        members = cell.notebook.team.memberships.select_related("user").order_by("user__username")
        self.fields["annotators"].choices = [(m.user_id, f"{m.user.username} ({m.role})") for m in members]
        self.order_fields(["generate_cell"])


class ModelCellForm(forms.Form):
    model = forms.TypedChoiceField(coerce=int, label="Model", help_text="A checkpoint of your team: trained in a notebook, "
                                   "uploaded on the Models page, or registered by an admin.")

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)
        models = Artifact.objects.filter(team=cell.notebook.team, kind=Artifact.Kind.CHECKPOINT)
        self.fields["model"].choices = [(m.pk, m.name) for m in models]


class CorpusCellForm(forms.Form):
    corpus = forms.TypedChoiceField(coerce=int, label="Corpus", help_text="One of your team's text datasets.")

    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)
        corpora = Dataset.objects.for_team(cell.notebook.team).filter(kind=Dataset.Kind.TEXT)
        self.fields["corpus"].choices = [(c.pk, f"{c.name} ({c.n_records} documents)") for c in corpora]


# Each kind's form class: the one its declaration names, or the form generated from its stage's config.
FORMS = {kind: import_string(k.form) if k.form else CellConfigForm for kind, k in CELL_KINDS.items()}


def bind_config(cell: Cell, config) -> forms.Form:
    """The cell's form bound as the page would post it, for the API: the stored config with `config`
    (a JSON object, maybe of a few keys) merged on top, and the defaults the page shows for what
    neither gives. A key the form has no field for, or a value of the wrong JSON type, is a
    ConfigError naming the key; the form then validates as the page's does."""
    if not isinstance(config, dict):
        raise ConfigError("config", f"must be a JSON object, not {_json_type(config)}")
    form = FORMS[cell.kind](cell=cell)
    refuse_unknown_keys(config, list(form.fields))
    data = {name: form.get_initial_for_field(field, name) for name, field in form.fields.items()}
    for name, value in config.items():
        data[name] = _as_posted(form, name, value)
    return FORMS[cell.kind](data, cell=cell)


def _as_posted(form: forms.Form, name: str, value):
    """A JSON value as the page's form field takes it; ConfigError(name) when its type cannot be meant."""
    field = form.fields[name]
    if name in getattr(form, "text_lists", ()):
        return _joined(name, value)
    if name in getattr(form, "json_lists", ()):
        if not isinstance(value, list):
            raise ConfigError(name, f"must be a list, not {_json_type(value)}")
        return json.dumps(value)
    if isinstance(field, forms.BooleanField):
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(field, forms.FloatField):  # before IntegerField, its base class
        expected, ok = "a number", _is_int(value) or isinstance(value, float)
    elif isinstance(field, forms.IntegerField) or isinstance(field, forms.TypedChoiceField) and field.coerce is int:
        expected, ok = "an integer", _is_int(value) or (value is None and not field.required)
    elif isinstance(field, forms.MultipleChoiceField):
        expected, ok = "a list of ids", isinstance(value, list) and all(_is_int(v) for v in value)
    else:
        expected, ok = "a string", isinstance(value, str)
    if not ok:
        raise ConfigError(name, f"must be {expected}, not {_json_type(value)}")
    return value


def _joined(name: str, value) -> str:
    """A list of strings as the page's text box holds it: one a line, or comma-separated."""
    separator = "\n" if name in LINE_LISTS else ","
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(name, f"must be a list of strings, not {_json_type(value)}")
    if any(separator in v for v in value):
        raise ConfigError(name, f"an item must not hold {'a comma' if separator == ',' else 'a line break'}")
    return (separator if separator == "\n" else ", ").join(value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type(value) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return "null" if value is None else f"{names.get(type(value), type(value).__name__)} ({json.dumps(value)[:40]})"
