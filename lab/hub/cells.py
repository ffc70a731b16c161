"""The playground cell: a notebook's way into the playground, on the checkpoint of an upstream model
cell. It runs nothing; its form picks the model cell and its partial opens the playground on that
cell's current checkpoint."""

from django import forms

from lab.notebooks.cell_kinds import CELL_KINDS
from lab.notebooks.forms import input_field
from lab.notebooks.kinds import cell_output
from lab.notebooks.models import Cell


class PlaygroundCellForm(forms.Form):
    def __init__(self, *args, cell: Cell, **kwargs):
        super().__init__(*args, initial=cell.config, **kwargs)
        self.fields["model_cell"] = input_field(cell, CELL_KINDS[Cell.Kind.PLAYGROUND].inputs[0])


def playground_model(cell: Cell, output=None) -> dict:
    """The checkpoint the playground opens on: the current output of the chosen model cell."""
    chosen = cell.config.get("model_cell")
    upstream = cell.notebook.cells.filter(pk=chosen).first() if isinstance(chosen, int) else None
    model = cell_output(upstream) if upstream else None
    return {"upstream": upstream, "model": model}
