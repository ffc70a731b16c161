"""The rl cell: its rewards are edited as JSON on the page and through the API, each checked field by
field (the error names the reward and its field), and its inputs are the team's own."""

import json
from html import unescape

import pytest
from django.test import Client

from lab.datasets.actions import create_dataset_from_path
from lab.hub.base_models import register_model_folder
from lab.notebooks.models import Cell, Notebook
from tests.builders import brought_model
from tests.lab.test_dataset_management import _api

pytestmark = pytest.mark.django_db

ONE_LINE = {"kind": "regex", "weight": 2.0, "pattern": r"\A[^\n]*\Z"}


@pytest.fixture
def rl_cell(cast, sample_data, data_dir, base_model):
    brought = register_model_folder(cast.team, brought_model(base_model, data_dir, "chat-base"), "chat base", cast.alice)
    gsm8k = create_dataset_from_path(cast.team, cast.alice, sample_data["eval/gsm8k-test-300.jsonl"], name="gsm8k")
    notebook = Notebook.objects.create(team=cast.team, title="rl", created_by=cast.alice)
    model = Cell.objects.create(notebook=notebook, position=0, kind=Cell.Kind.MODEL, config={"model": brought.pk})
    return Cell.objects.create(notebook=notebook, position=1, kind=Cell.Kind.RL,
                               config={"model_cell": model.pk, "dataset": gsm8k.pk, "max_completion_length": 32})


def _patch(cast, cell, config):
    return _api(cast.alice).patch(f"/api/cells/{cell.pk}/", {"config": config}, content_type="application/json")


def test_the_rewards_are_saved_as_a_list_and_shown_as_json_on_the_page(cast, rl_cell):
    rewards = [{"kind": "exact_match", "extract": "gsm8k"}, ONE_LINE]
    response = _patch(cast, rl_cell, {"rewards": rewards, "num_generations": 8})
    assert response.status_code == 200, response.json()
    rl_cell.refresh_from_db()
    assert rl_cell.config["rewards"] == rewards and rl_cell.config["num_generations"] == 8

    page = Client()
    page.force_login(cast.alice)
    html = unescape(page.get(f"/notebooks/{rl_cell.notebook.pk}/").content.decode())
    assert json.dumps(rewards) in html and "Reinforcement learning (GRPO)" in html and "Answers per prompt" in html


def test_rewards_posted_on_the_page_as_bad_or_deep_json_are_an_error_on_the_field(cast, rl_cell):
    page = Client()
    page.force_login(cast.alice)
    form = {"model_cell": rl_cell.config["model_cell"], "dataset": rl_cell.config["dataset"]}
    for text, words in [('[{"kind": "regex",', "is not JSON"), ("[" * 5000 + "]" * 5000, "nested deeper than 64")]:
        response = page.post(f"/cells/{rl_cell.pk}/save/", form | {"rewards": text})
        assert response.status_code == 400 and words in unescape(response.content.decode())
    rl_cell.refresh_from_db()
    assert "rewards" not in rl_cell.config


DEEP = {"kind": "regex", "pattern": "x"}
for _ in range(80):
    DEEP = {"kind": "regex", "pattern": DEEP}


@pytest.mark.parametrize("rewards, words", [
    ([{"kind": "bleu"}], "rewards[0].kind: must be one of exact_match"),
    ([ONE_LINE, {"kind": "regex", "pattern": "(("}], "rewards[1].pattern: not a regular expression"),
    ([{"kind": "length", "target": 10**40}], "rewards[0].target: must be between 1 and"),
    ([{"kind": "length", "target": 4, "weight": 1e300}], "rewards[0].weight: must be between -1000 and 1000"),
    ([{"kind": "regex", "pattern": "a", "flags": "i"}], "rewards[0].flags: is not a field of a regex reward"),
    ([{"kind": "reward_model"}], "needs a reward model input"),
    ([DEEP], "nested deeper than 64 levels"),
    ("regex", "must be a list"),
])
def test_a_bad_reward_is_a_400_naming_the_reward_and_its_field(cast, rl_cell, rewards, words):
    before = dict(rl_cell.config)
    response = _patch(cast, rl_cell, {"rewards": rewards})
    assert response.status_code == 400, response.json()
    assert words in json.dumps(response.json()), response.json()
    rl_cell.refresh_from_db()
    assert rl_cell.config == before


def test_a_reward_model_of_another_team_is_not_a_choice(cast, rl_cell):
    theirs = Notebook.objects.create(team=cast.other_team, title="theirs", created_by=cast.mallory)
    reward = Cell.objects.create(notebook=theirs, position=0, kind=Cell.Kind.REWARD, config={})
    response = _patch(cast, rl_cell, {"reward_cell": reward.pk, "rewards": [{"kind": "reward_model"}]})
    assert response.status_code == 400 and "Select a valid choice" in response.json()["reward_cell"][0]
    response = _api(cast.mallory).patch(f"/api/cells/{rl_cell.pk}/", {"config": {"beta": 0.1}}, content_type="application/json")
    assert response.status_code == 404
