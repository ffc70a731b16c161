"""A cell's config through the REST API: the page's form validates it, with the page's defaults, merged
onto what is stored; wrong types, unknown keys and absurd numbers are a 400 naming the field."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.notebooks.models import Cell, Notebook
from tests.builders import FAST_PRETRAIN, shakespeare_notebook
from tests.lab.test_dataset_management import _api
from training.generate_config import GenerateConfig
from training.pretrain_config import PretrainConfig

pytestmark = pytest.mark.django_db

DEEP_JSON = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def notebook(cast, sample_data):
    return shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])


def _patch(client, cell, body):
    return client.patch(f"/api/cells/{cell.pk}/", body, content_type="application/json")


def _add(client, notebook, body):
    return client.post(f"/api/notebooks/{notebook.pk}/cells/", body, content_type="application/json")


def test_a_patch_of_one_field_keeps_the_stored_config_and_fills_the_page_defaults(cast, notebook):
    cell = notebook["pretrain"]
    assert set(FAST_PRETRAIN) < set(PretrainConfig.__dataclass_fields__)  # stored partial, as the demo's
    response = _patch(_api(cast.carol), cell, {"config": {"max_steps": 50}})
    assert response.status_code == 200, response.json()
    cell.refresh_from_db()
    assert cell.config["max_steps"] == 50 and cell.config["lr"] == FAST_PRETRAIN["lr"]
    assert cell.config["tokenizer_cell"] == notebook["tokenizer"].pk
    assert cell.config["beta2"] == 0.95 and cell.config["compile"] is False  # the page's defaults


@pytest.mark.parametrize("config, message", [
    ("x", "must be a JSON object, not a string"),
    (["max_steps", 5], "must be a JSON object, not a list"),
    (None, "may not be null"),
])
def test_a_config_that_is_not_an_object_is_a_400(cast, notebook, config, message):
    cell = notebook["pretrain"]
    before = dict(cell.config)
    response = _patch(_api(cast.alice), cell, {"config": config})
    assert response.status_code == 400 and message in response.json()["config"][0]
    cell.refresh_from_db()
    assert cell.config == before


def test_adding_a_cell_with_a_config_that_is_not_an_object_is_a_400_and_adds_nothing(cast, notebook):
    response = _add(_api(cast.alice), notebook["notebook"], {"kind": "pretrain", "config": "x"})
    assert response.status_code == 400 and "must be a JSON object" in response.json()["config"][0]
    assert notebook["notebook"].cells.count() == 3


@pytest.mark.parametrize("field, value, message", [
    ("max_steps", 10**20, "must be at most 10,000,000: ten million optimizer steps"),
    ("max_steps", 99999999999999999999999999999, "must be at most 10,000,000"),
    ("lr", 1e6, "must be at most 1: AdamW"),
    ("sample_tokens", 10**9, "must be at most 4,096"),
    ("eval_batches", 10**9, "must be at most 10,000"),
    ("checkpoint_every_minutes", 1e-9, "0 (off) or at least 1"),
    ("max_steps", "lots", "must be an integer, not a string"),
    ("max_steps", 1.5, "must be an integer, not a number"),
    ("compile", "yes", "must be true or false"),
    ("lr", True, "must be a number, not true or false"),
    ("sample_prompt", {"a": 1}, "must be a string, not an object"),
    ("preset", ["tiny"], "must be a string, not a list"),
    ("tokenizer_cell", "1", "must be an integer, not a string"),
    ("tokenizer_cell", 99999999999999999999, "Select a valid choice"),
    ("learning_rate", 0.1, "unknown key (known keys: corpus_cell, tokenizer_cell, model_cell, eval_cells, preset, context_length"),
    ("output_dir", "/etc", "unknown key"),
])
def test_a_bad_value_is_a_400_naming_the_field_and_nothing_is_saved(cast, notebook, field, value, message):
    cell = notebook["pretrain"]
    before = dict(cell.config)
    response = _patch(_api(cast.alice), cell, {"config": {field: value}})
    assert response.status_code == 400
    assert message in " ".join(response.json()[field]), response.json()
    cell.refresh_from_db()
    assert cell.config == before


def test_the_limits_hold_for_a_cell_whose_inputs_have_no_output_yet(cast, notebook):
    sft = _add(_api(cast.alice), notebook["notebook"], {"kind": "sft", "config": {"model_cell": notebook["pretrain"].pk}})
    assert sft.status_code == 400 and "dataset" in sft.json()  # the dataset input is required, as on the page
    corpus = notebook["corpus"].config["corpus"]
    response = _add(_api(cast.alice), notebook["notebook"], {"kind": "generate", "config": {
        "model_cells": [notebook["pretrain"].pk], "prompts": ["Hi"], "max_prompts": 10**9}})
    assert response.status_code == 400 and "must be at most 100,000" in response.json()["max_prompts"][0]
    assert corpus and notebook["notebook"].cells.count() == 3


def test_generate_and_annotate_cells_are_made_through_the_api_with_their_lists_of_ids(cast, notebook):
    api = _api(cast.alice)
    response = _add(api, notebook["notebook"], {"kind": "generate", "title": "Compare", "config": {
        "model_cells": [notebook["pretrain"].pk], "prompts": ["What is a sonnet?", "Say hello, twice."]}})
    assert response.status_code == 201, response.json()
    generate = Cell.objects.get(pk=response.json()["id"])
    assert generate.config["model_cells"] == [notebook["pretrain"].pk]
    assert generate.config["prompts"] == ["What is a sonnet?", "Say hello, twice."]
    assert generate.config["temperature"] == GenerateConfig.__dataclass_fields__["temperature"].default

    response = _add(api, notebook["notebook"], {"kind": "annotate", "config": {
        "generate_cell": generate.pk, "annotators": [cast.bob.pk, cast.carol.pk]}})
    assert response.status_code == 201, response.json()
    annotate = Cell.objects.get(pk=response.json()["id"])
    assert annotate.config["annotators"] == [cast.bob.pk, cast.carol.pk] and annotate.config["overlap"] == 2

    response = _patch(api, annotate, {"config": {"overlap": 40_000}})
    assert response.status_code == 400 and "overlap" in response.json()
    response = _patch(api, annotate, {"config": {"annotators": [cast.mallory.pk]}})
    assert response.status_code == 400 and "Select a valid choice" in response.json()["annotators"][0]
    response = _patch(api, generate, {"config": {"model_cells": "1, 2"}})
    assert response.status_code == 400 and "must be a list of ids" in response.json()["model_cells"][0]
    response = _patch(api, generate, {"config": {"prompts": "one"}})
    assert response.status_code == 400 and "must be a list of strings" in response.json()["prompts"][0]


def test_an_id_of_another_team_in_a_config_is_not_a_choice(cast, notebook, sample_data):
    """Mallory names alice's cells and dataset in her own notebook: refused as ids that do not exist."""
    theirs = Notebook.objects.create(team=cast.other_team, title="mine", created_by=cast.mallory)
    create_dataset_from_path(cast.other_team, cast.mallory, sample_data["corpora/tinyshakespeare.txt"])
    api = _api(cast.mallory)
    response = _add(api, theirs, {"kind": "generate", "config": {"model_cells": [notebook["pretrain"].pk], "prompts": ["x"]}})
    assert response.status_code == 400 and "Select a valid choice" in response.json()["model_cells"][0]
    response = _add(api, theirs, {"kind": "corpus", "config": {"corpus": notebook["corpus"].config["corpus"]}})
    assert response.status_code == 400 and "Select a valid choice" in response.json()["corpus"][0]
    assert not theirs.cells.exists()
    for method, url in [("patch", f"/api/cells/{notebook['pretrain'].pk}/"),
                        ("post", f"/api/notebooks/{notebook['notebook'].pk}/cells/")]:
        response = getattr(api, method)(url, {"config": {"max_steps": 5}}, content_type="application/json")
        assert response.status_code == 404


@pytest.mark.parametrize("title", [{"a": 1}, ["t"], None, "x" * 201])
def test_a_title_that_is_not_a_short_string_is_a_400(cast, notebook, title):
    cell = notebook["pretrain"]
    response = _patch(_api(cast.alice), cell, {"title": title})
    assert response.status_code == 400 and "title" in response.json()
    cell.refresh_from_db()
    assert cell.title == "Tiny"
    response = _add(_api(cast.alice), notebook["notebook"], {"kind": "note", "title": title})
    assert response.status_code == 400 and "title" in response.json()


@pytest.mark.parametrize("body", [DEEP_JSON, '{"config": ' + DEEP_JSON + "}", "[1, 2]"])
def test_a_body_that_is_deep_or_not_an_object_is_a_400(cast, notebook, body):
    response = _api(cast.alice).patch(f"/api/cells/{notebook['pretrain'].pk}/", body, content_type="application/json")
    assert response.status_code == 400


def test_the_page_and_the_api_save_the_same_config(cast, notebook):
    """The page posts every field; the API one: both store what the form cleaned."""
    cell = notebook["pretrain"]
    _patch(_api(cast.alice), cell, {"config": {"max_steps": 60}})
    cell.refresh_from_db()
    by_api = dict(cell.config)
    client = Client()
    client.force_login(cast.alice)
    shown = {k: v for k, v in by_api.items() if v is not False and v is not None}
    response = client.post(f"/cells/{cell.pk}/save/", {**shown, "title": "Tiny"})
    assert response.status_code == 302
    cell.refresh_from_db()
    assert cell.config == by_api


def test_every_cell_of_the_demo_takes_a_patch_of_one_field(sample_data):
    """The demo's cells store partial configs (seed_demo): a PATCH merges onto them, as the page would post."""
    call_command("seed_demo", stdout=io.StringIO())
    demo = get_user_model().objects.get(username="demo")
    api = _api(demo)
    for cell in Notebook.objects.get().cells.all():
        before = dict(cell.config)
        response = _patch(api, cell, {"config": {}})
        assert response.status_code == 200, (cell.kind, response.json())
        cell.refresh_from_db()
        assert before.items() <= cell.config.items(), cell.kind
    pretrain = Cell.objects.get(kind=Cell.Kind.PRETRAIN)
    assert _patch(api, pretrain, {"config": {"max_steps": 700}}).status_code == 200
    pretrain.refresh_from_db()
    assert (pretrain.config["max_steps"], pretrain.config["sample_prompt"]) == (700, "ROMEO:")


def test_a_patch_cannot_change_a_cells_kind(cast, notebook):
    cell = notebook["pretrain"]
    response = _patch(_api(cast.alice), cell, {"kind": "note", "config": {"markdown": "hi"}})
    assert response.status_code == 400 and "cannot change" in response.json()["kind"][0]
    assert _patch(_api(cast.alice), cell, {"kind": "pretrain", "title": "Same"}).status_code == 200
    cell.refresh_from_db()
    assert (cell.kind, cell.title) == ("pretrain", "Same")
