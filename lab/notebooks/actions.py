"""A notebook's own action of running a cell: its config and inputs, checked and frozen once, become a
run through the lab's one way of making runs (lab.runs.actions.create_run)."""

from dataclasses import asdict

from lab.notebooks.kinds import RUNNABLE, resolve_and_freeze_inputs, training_config
from lab.notebooks.models import Cell
from lab.runs.actions import create_run
from lab.runs.models import Run
from training.config import ConfigError

# The run's own folder exists only once the run does: create_run sets it.
PENDING_OUTPUT_DIR = "/pending"


def start_cell_run(cell: Cell, user) -> Run:
    """Freeze the cell's config and inputs into a new queued run. Raises ConfigError before creating anything."""
    if cell.kind not in RUNNABLE:
        raise ConfigError("kind", f"a {cell.get_kind_display().lower()} cell has nothing to run")
    if cell.current_run and cell.current_run.is_active:
        raise ConfigError("run", "this cell is already running: cancel it first")
    stage, queue = RUNNABLE[cell.kind]
    inputs, frozen = resolve_and_freeze_inputs(cell)
    config = training_config(cell, inputs, output_dir=PENDING_OUTPUT_DIR)
    devices = cell.config.get("devices", 1)
    if check_devices := getattr(config, "check_devices", None):  # a config that trains on one only (dpo's kto)
        check_devices(devices)
    return create_run(cell.notebook.team, stage, queue, asdict(config), frozen, user, cell=cell, devices=devices)
