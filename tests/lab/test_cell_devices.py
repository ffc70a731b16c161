"""How many devices a cell's runs ask for: the form of a kind whose stage trains on several (pretrain,
sft, dpo) has `devices`, a run of the cell asks the queue for that many (Run.devices), the stage's
config never sees it, and a value that cannot be meant is a 400 naming `devices`, nothing queued."""

import json

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.cell_kinds import CELL_KINDS
from lab.notebooks.forms import MAX_DEVICES
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Run
from tests.builders import brought_model
from tests.lab.test_base_models import _defaults
from tests.lab.test_dataset_management import _api

pytestmark = pytest.mark.django_db


@pytest.fixture
def notebook(cast, data_dir, base_model, tmp_path) -> dict:
    model = register_model_folder(cast.team, brought_model(base_model, data_dir, "base"), "base", cast.alice)
    notebook = Notebook.objects.create(team=cast.team, title="tune", created_by=cast.alice)
    model_cell = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": model.pk})
    chats = tmp_path / "chats.jsonl"
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    chats.write_text((json.dumps(chat) + "\n") * 4)
    dataset = create_dataset_from_path(cast.team, cast.alice, chats, name="chats")
    return {"notebook": notebook, "sft": {"model_cell": model_cell.pk, "dataset": dataset.pk, "max_length": 128}}


def _add(user, notebook: Notebook, kind: str, config: dict):
    return _api(user).post(f"/api/notebooks/{notebook.pk}/cells/", {"kind": kind, "config": config},
                           content_type="application/json")


def test_a_cell_asking_for_two_devices_makes_a_run_that_asks_for_two(cast, notebook):
    response = _add(cast.alice, notebook["notebook"], "sft", {**notebook["sft"], "devices": 2})
    assert response.status_code == 201, response.json()
    cell = Cell.objects.get(pk=response.json()["id"])
    assert cell.config["devices"] == 2

    response = _api(cast.alice).post(f"/api/cells/{cell.pk}/run/")
    assert response.status_code == 201, response.json()
    run = Run.objects.get(pk=response.json()["id"])
    assert run.devices == 2 and run.stage == "sft"
    assert "devices" not in run.config  # the run's, not the stage's: torchrun gives the stage its world

    # The page's form shows it (under "Advanced") and saves it like any field.
    page = Client()
    page.force_login(cast.alice)
    html = page.get(f"/notebooks/{notebook['notebook'].pk}/").content.decode()
    assert 'name="devices"' in html and "Devices" in html


def test_a_dpo_loss_that_trains_on_one_device_is_refused_on_two_before_queueing(cast, notebook, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "hi", "chosen": "hello", "rejected": "go away"}) + "\n")
    dataset = create_dataset_from_path(cast.team, cast.alice, pairs, name="pairs")
    config = {**notebook["sft"], "dataset": dataset.pk, "loss_type": "kto", "devices": 2}
    cell = Cell.objects.get(pk=_add(cast.alice, notebook["notebook"], "dpo", config).json()["id"])
    response = _api(cast.alice).post(f"/api/cells/{cell.pk}/run/")
    assert response.status_code == 400 and response.json()["field"] == "devices"
    assert "loss_type kto trains on one device" in response.json()["error"]
    assert not Run.objects.exists()


def test_the_kinds_whose_stage_trains_on_one_device_have_no_devices_field(cast, notebook):
    assert {k for k, kind in CELL_KINDS.items() if kind.multi_device} == {"pretrain", "sft", "dpo"}
    response = _add(cast.alice, notebook["notebook"], "reward", {"devices": 2})
    assert response.status_code == 400 and "devices" in response.json()
    assert not Run.objects.exists()


@pytest.mark.parametrize("devices, message", [
    (0, "greater than or equal to 1"),
    (-3, "greater than or equal to 1"),
    (MAX_DEVICES + 1, f"less than or equal to {MAX_DEVICES}"),
    (10**40, f"less than or equal to {MAX_DEVICES}"),
    ("2", "must be an integer, not a string"),
    (2.5, "must be an integer, not a number"),
    (True, "must be an integer, not true or false"),
    (None, "must be an integer, not null"),
])
def test_a_devices_value_that_cannot_be_meant_is_a_400_naming_it(cast, notebook, devices, message):
    response = _add(cast.alice, notebook["notebook"], "sft", {**notebook["sft"], "devices": devices})
    assert response.status_code == 400
    assert list(response.json()) == ["devices"] and message in response.json()["devices"][0]
    assert not Cell.objects.filter(kind=Cell.Kind.SFT).exists() and not Run.objects.exists()


@pytest.mark.parametrize("devices, message", [
    ("two", "Enter a whole number."),
    ("9" * 5000, "Enter a whole number."),  # past Python's digit limit for int(): no 500
    ("1e3", "Enter a whole number."),
    ("", "This field is required."),
])
def test_the_page_refuses_what_is_not_a_device_count(cast, notebook, devices, message):
    response = _add(cast.alice, notebook["notebook"], "sft", notebook["sft"])
    cell = Cell.objects.get(pk=response.json()["id"])
    page = Client()
    page.force_login(cast.alice)
    response = page.post(f"/cells/{cell.pk}/save/", {**_defaults(cell), "devices": devices})
    assert response.status_code == 400 and message in response.content.decode()
    cell.refresh_from_db()
    assert cell.config["devices"] == 1 and not Run.objects.exists()
