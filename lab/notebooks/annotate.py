"""The human-feedback cell: a campaign over the pairs of responses its generate cell's current run
wrote. One campaign per generate run; pressing Start again for the same run opens the same one."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from lab.feedback.actions import add_items, create_campaign, pairs_from_generations
from lab.feedback.models import Campaign
from lab.notebooks.kinds import resolve_inputs
from lab.notebooks.models import Cell
from lab.runs.models import Artifact
from training import json_limits
from training.config import ConfigError

GENERATION_KEYS = ("prompt_index", "prompt", "model", "sample", "text")
"""What each line of a generate run's responses file holds (training/generate.py writes them)."""


def campaigns_of(cell: Cell):
    """The campaigns started from the runs of this cell's generate cell, newest first."""
    generate_cell = cell.config.get("generate_cell")
    if not generate_cell:
        return Campaign.objects.none()
    return Campaign.objects.filter(team=cell.notebook.team, source_run__cell_id=generate_cell).order_by("-created_at")


def start_campaign(cell: Cell, user) -> tuple[Campaign, bool]:
    """(campaign, created) for the generate cell's current run; ConfigError says what is missing."""
    generations = resolve_inputs(cell)["generate_cell"]
    artifact = Artifact.objects.select_related("run").get(pk=generations.id)
    existing = Campaign.objects.filter(team=cell.notebook.team, source_run=artifact.run).first()
    if existing is not None:
        return existing, False
    items = pairs_from_generations(_records(generations.path))
    if not items:
        raise ConfigError("generate_cell", "the responses make no pairs: generate two samples per prompt, "
                                           "or answer with two models")
    annotators = get_user_model().objects.filter(pk__in=cell.config.get("annotators", []),
                                                 memberships__team=cell.notebook.team)
    with transaction.atomic():
        campaign = create_campaign(
            cell.notebook.team, cell.config.get("name") or cell.display_title,
            guidelines=cell.config.get("guidelines", ""), overlap=cell.config.get("overlap", 2),
            annotators=annotators,
            created_by=user, source_run=artifact.run,
        )
        add_items(campaign, items)
    return campaign, True


def _records(path: str):
    """The generate run's records; ConfigError naming the file's line that is not a JSON object."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield generation_record(line, f"{Path(path).name}, line {number}")


def generation_record(line: str, where: str) -> dict:
    """One line of a generations file, parsed with the depth limit."""
    try:
        record = json_limits.loads(line)
    except ValueError as exc:
        raise ConfigError("generate_cell", f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ConfigError("generate_cell", f"{where}: must be a JSON object")
    missing = [key for key in GENERATION_KEYS if key not in record]
    if missing:
        raise ConfigError("generate_cell", f"{where}: has no {', '.join(missing)} (not a generate run's record)")
    if not all(isinstance(record[key], int) and not isinstance(record[key], bool) for key in ("prompt_index", "sample")):
        raise ConfigError("generate_cell", f"{where}: prompt_index and sample must be whole numbers")
    return record
