"""Malformed, huge and foreign values in URLs, query strings and bodies: a 400 naming the parameter, or the
404 any missing thing gets; never a 500 (an int() of text, a UUID lookup of "abc", an integer past 64 bits)."""

import json
from html import unescape

import pytest

from lab.datasets.models import Upload
from lab.notebooks.models import Cell
from lab.runs.models import Artifact, Run
from tests.builders import shakespeare_notebook
from tests.lab.test_dataset_management import _api, _page
from tests.lab.test_team_isolation import alphas_things  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"  # past 2**64


@pytest.mark.parametrize("after, words", [
    ("abc", "Enter a whole number."),
    ("-1", "greater than or equal to 0"),
    (HUGE, "less than or equal to 9223372036854775807"),
    ("1e3", "Enter a whole number."),
])
def test_a_bad_after_is_the_same_400_from_the_page_and_the_api(cast, alphas_things, after, words):  # noqa: F811
    run = alphas_things["run"]
    for client, url in [(_page(cast.alice), f"/runs/{run.pk}/events/"), (_api(cast.alice), f"/api/runs/{run.pk}/events/")]:
        response = client.get(url, {"after": after})
        assert response.status_code == 400, url
        assert response.json()["field"] == "after" and words in response.json()["error"], response.json()


def test_after_still_pages_the_events(cast, alphas_things):  # noqa: F811
    run = alphas_things["run"]
    run.append_event("log", level="info", message="second")
    page = _page(cast.alice).get(f"/runs/{run.pk}/events/", {"after": "1"}).json()["events"]
    api = _api(cast.alice).get(f"/api/runs/{run.pk}/events/", {"after": "1"}).json()
    assert [e["seq"] for e in page] == [e["seq"] for e in api] == [2]
    assert len(_api(cast.alice).get(f"/api/runs/{run.pk}/events/").json()) == 2


def test_the_dataset_page_answers_a_bad_or_foreign_tokenizer(cast, alphas_things, settings):  # noqa: F811
    dataset = alphas_things["corpus"]
    client = _page(cast.alice)
    response = client.get(f"/datasets/{dataset.pk}/", {"tokenizer": "abc"})
    assert response.status_code == 400 and response.content.decode() == "tokenizer: Enter a whole number."
    assert client.get(f"/datasets/{dataset.pk}/", {"tokenizer": HUGE}).status_code == 400
    theirs = Artifact.objects.create(team=cast.other_team, kind="tokenizer", name="mallory's", path="x.json", sha256="1" * 64)
    assert client.get(f"/datasets/{dataset.pk}/", {"tokenizer": theirs.pk}).status_code == 404
    assert client.get(f"/datasets/{dataset.pk}/", {"tokenizer": ""}).status_code == 200


def test_use_run_answers_a_bad_foreign_or_missing_run(cast, alphas_things):  # noqa: F811
    cell, run = alphas_things["cell"], alphas_things["run"]
    other_cell = Cell.objects.create(notebook=cell.notebook, kind=Cell.Kind.NOTE)
    other_run = Run.objects.create(team=cast.team, cell=other_cell, stage="tokenizer", config={}, status="succeeded")
    client = _page(cast.alice)
    url = f"/cells/{cell.pk}/use-run/"
    assert client.post(url, {"run": "abc"}).content.decode() == "run: Enter a whole number."
    for value, status in [("abc", 400), (HUGE, 400), ("", 400), ("-3", 400), (other_run.pk, 404), (run.pk + 1000, 404)]:
        assert client.post(url, {"run": value}).status_code == status, value
    cell.refresh_from_db()
    assert cell.current_run is None
    assert client.post(url, {"run": run.pk}).status_code == 302
    cell.refresh_from_db()
    assert cell.current_run == run
    assert _page(cast.mallory).post(url, {"run": run.pk}).status_code == 404


@pytest.mark.parametrize("method", ["get", "patch", "delete", "post"])
@pytest.mark.parametrize("upload_id", ["abc", HUGE, "00000000-0000-0000-0000-00000000000g"])
def test_an_upload_id_that_is_no_uuid_is_a_404(cast, method, upload_id):
    suffix = "complete/" if method == "post" else ""
    response = getattr(_api(cast.alice), method)(f"/api/uploads/{upload_id}/{suffix}")
    assert response.status_code == 404


def test_another_users_upload_is_a_404_and_its_own_works(cast):
    upload = _api(cast.alice).post("/api/uploads/", {"filename": "a.txt", "size": 3}, content_type="application/json").json()
    assert _api(cast.mallory).get(f"/api/uploads/{upload['id']}/").status_code == 404
    assert _api(cast.alice).get(f"/api/uploads/{upload['id']}/").json()["offset"] == 0
    response = _api(cast.alice).post(f"/api/uploads/{upload['id']}/complete/", {"team": int(HUGE)}, content_type="application/json")
    assert response.status_code == 400 and "team" in response.json()
    assert Upload.objects.filter(pk=upload["id"]).exists()


@pytest.mark.parametrize("url", [
    "/runs/{}/", "/runs/{}/events/", "/datasets/{}/", "/notebooks/{}/", "/models/{}/", "/artifacts/{}/download/",
    "/cells/{}/estimate/", "/api/runs/{}/", "/api/runs/{}/events/", "/api/cells/{}/", "/api/notebooks/{}/",
    "/api/datasets/{}/", "/api/artifacts/{}/", "/api/artifacts/{}/download/", "/api/campaigns/{}/",
])
def test_an_id_past_64_bits_in_a_path_is_a_404(cast, url):
    assert _page(cast.alice).get(url.format(HUGE)).status_code == 404
    assert _page(cast.alice).get(url.format("9223372036854775808")).status_code == 404


@pytest.mark.parametrize("url", ["/api/runs/", "/api/notebooks/", "/api/datasets/", "/api/artifacts/", "/api/campaigns/"])
def test_list_endpoints_clamp_a_huge_limit_and_refuse_a_malformed_one(cast, alphas_things, url):  # noqa: F811
    api = _api(cast.alice)
    response = api.get(url, {"limit": HUGE})
    assert response.status_code == 200 and "limit=1000" in (response.json()["next"] or "limit=1000")
    assert api.get(url, {"offset": "9223372036854775807"}).json()["results"] == []
    for params, field in [({"limit": "abc"}, "limit"), ({"limit": "-5"}, "limit"), ({"limit": "0"}, "limit"),
                          ({"offset": "-1"}, "offset"), ({"offset": "x"}, "offset"), ({"offset": HUGE}, "offset")]:
        response = api.get(url, params)
        assert response.status_code == 400 and response.json()["field"] == field, (params, response.content)


def test_a_huge_limit_is_served_as_the_largest_page(cast, sample_data):
    notebook = shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    Run.objects.bulk_create([Run(team=cast.team, cell=notebook["pretrain"], stage="pretrain", config={}) for _ in range(1003)])
    body = _api(cast.alice).get("/api/runs/", {"limit": HUGE}).json()
    assert (body["count"], len(body["results"])) == (1003, 1000)


@pytest.mark.parametrize("body, field", [
    ({"title": "x", "team": int(HUGE)}, "team"),
    ({"title": "x", "team": "abc"}, "team"),
    ({"title": "x", "team": None}, "team"),
])
def test_a_bad_team_in_a_body_is_a_400(cast, body, field):
    response = _api(cast.alice).post("/api/notebooks/", body, content_type="application/json")
    assert response.status_code == 400 and field in response.json()


def test_another_teams_id_in_a_body_is_answered_as_a_missing_one(cast):
    api = _api(cast.mallory)
    for team in (cast.team.pk, cast.team.pk + 1000):
        response = api.post("/api/notebooks/", {"title": "x", "team": team}, content_type="application/json")
        assert response.status_code == 404
    assert not cast.team.notebooks.exists()
    response = api.post("/api/datasets/", {"team": HUGE, "file": b""})
    assert response.status_code == 400 and "team" in response.json()


@pytest.fixture
def pretrain(cast, sample_data):
    return shakespeare_notebook(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])["pretrain"]


@pytest.mark.parametrize("params, field, words", [
    ({"context_length": "-5"}, "context_length", "must be at least 2"),
    ({"context_length": "abc"}, "context_length", "Enter a whole number."),
    ({"batch_size": HUGE}, "batch_size", "less than or equal to"),
    ({"max_steps": "100000000000"}, "max_steps", "must be at most 10,000,000"),
    ({"preset": "gpt-9"}, "preset", "unknown preset"),
    ({"context_length": "4096"}, "context_length", "longer than the 1024 positions"),
])
def test_the_cost_estimate_names_a_value_it_cannot_estimate(cast, pretrain, params, field, words):
    response = _page(cast.alice).get(f"/cells/{pretrain.pk}/estimate/", params)
    assert response.status_code == 400 and response.json()["field"] == field and words in response.json()["error"]


def test_the_cost_estimate_of_good_values(cast, pretrain):
    body = _page(cast.alice).get(f"/cells/{pretrain.pk}/estimate/", {"context_length": "32", "batch_size": "4"}).json()
    assert body["tokens_per_step"] == 32 * 4 * pretrain.config["grad_accum"]


def test_a_stored_config_the_estimate_refuses_still_shows_the_notebook(cast, pretrain):
    Cell.objects.filter(pk=pretrain.pk).update(config={**pretrain.config, "context_length": -5})
    assert _page(cast.alice).get(f"/notebooks/{pretrain.notebook_id}/").status_code == 200


DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def generations(cast, settings, pretrain):
    """A generate cell whose current run wrote a file with a deeply nested third line, and its annotate cell."""
    notebook = pretrain.notebook
    generate = Cell.objects.create(notebook=notebook, kind=Cell.Kind.GENERATE, config={"model_cells": [pretrain.pk]})
    run = Run.objects.create(team=cast.team, cell=generate, stage="generate", config={}, status="succeeded")
    folder = settings.LAB_DATA_DIR / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    record = {"prompt_index": 0, "prompt": "hi", "model": "m", "sample": 0, "text": "hello"}
    (folder / "generations.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({**record, "sample": 1}) + "\n" + DEEP + "\n")
    Artifact.objects.create(team=cast.team, run=run, kind="generations", name="g", path=f"runs/{run.pk}/generations.jsonl",
                            sha256="2" * 64)
    Cell.objects.filter(pk=generate.pk).update(current_run=run)
    annotate = Cell.objects.create(notebook=notebook, kind=Cell.Kind.ANNOTATE, config={"generate_cell": generate.pk})
    return annotate


def test_a_deeply_nested_generations_line_is_named_not_a_recursion_error(cast, generations):
    client = _page(cast.alice)
    page = client.get(f"/notebooks/{generations.notebook_id}/").content.decode()
    assert "generations.jsonl, line 3: not valid JSON (nested deeper than 64 levels" in page
    response = client.post(f"/cells/{generations.pk}/run/", follow=True)
    assert response.status_code == 200
    assert "generate_cell: generations.jsonl, line 3: not valid JSON (nested deeper than 64 levels" in response.content.decode()
    assert not generations.notebook.team.campaigns.exists()


def test_a_cell_title_past_the_column_is_cut_on_the_page_not_a_database_error(cast, pretrain):
    response = _page(cast.alice).post(f"/notebooks/{pretrain.notebook_id}/cells/", {"kind": "note", "title": "x" * 5000})
    assert response.status_code == 302
    assert pretrain.notebook.cells.get(kind="note").title == "x" * 200


def test_an_outsider_with_malformed_values_gets_the_404_before_any_400(cast, alphas_things):  # noqa: F811
    """Access is checked first: a 400 would tell mallory that alice's thing exists."""
    t = alphas_things
    page, api = _page(cast.mallory), _api(cast.mallory)
    for client, method, url, data in [
        (page, "get", f"/runs/{t['run'].pk}/events/", {"after": "abc"}),
        (api, "get", f"/api/runs/{t['run'].pk}/events/", {"after": HUGE}),
        (page, "get", f"/datasets/{t['corpus'].pk}/", {"tokenizer": "abc"}),
        (page, "post", f"/cells/{t['cell'].pk}/use-run/", {"run": "abc"}),
        (page, "get", f"/cells/{t['cell'].pk}/estimate/", {"context_length": "-5"}),
    ]:
        assert getattr(client, method)(url, data).status_code == 404, url
    response = api.patch(f"/api/cells/{t['cell'].pk}/", {"config": "x", "title": {}}, content_type="application/json")
    assert response.status_code == 404


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "hi"}', "line 3: has no prompt_index, model, sample, text (not a generate run's record)"),
    ('{"prompt_index": "0", "prompt": "hi", "model": "m", "sample": 1, "text": "t"}',
     "line 3: prompt_index and sample must be whole numbers"),
])
def test_a_generations_line_that_is_no_record_is_named_not_a_key_error(cast, generations, line, message):
    path = generations.notebook.team.artifacts.get(kind="generations").absolute_path
    path.write_text("\n".join(path.read_text().splitlines()[:2] + [line]) + "\n")
    response = _page(cast.alice).post(f"/cells/{generations.pk}/run/", follow=True)
    assert response.status_code == 200 and message in unescape(response.content.decode())
    assert not generations.notebook.team.campaigns.exists()
