"""A user of another team (or an annotator) gets 404 on every page and API route of a team's things."""

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.datasets.actions import create_dataset_from_path
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def alphas_things(cast, sample_data, settings, tmp_path):
    corpus = create_dataset_from_path(cast.team, cast.alice, sample_data["corpora/tinyshakespeare.txt"])
    notebook = Notebook.objects.create(team=cast.team, title="secret", created_by=cast.alice)
    cell = Cell.objects.create(notebook=notebook, kind=Cell.Kind.CORPUS, config={"corpus": corpus.pk})
    run = Run.objects.create(team=cast.team, cell=cell, stage="tokenizer", config={}, status="succeeded")
    run.append_event("log", level="info", message="hello")
    folder = settings.LAB_DATA_DIR / "runs" / str(run.pk)
    folder.mkdir(parents=True)
    (folder / "tokenizer.json").write_text("{}")
    artifact = Artifact.objects.create(team=cast.team, run=run, kind="tokenizer", name="tok",
                                       path=f"runs/{run.pk}/tokenizer.json", sha256="0" * 64)
    return {"corpus": corpus, "notebook": notebook, "cell": cell, "run": run, "artifact": artifact}


def _page_urls(t) -> list[tuple[str, str]]:
    return [
        ("get", f"/notebooks/{t['notebook'].pk}/"),
        ("post", f"/notebooks/{t['notebook'].pk}/cells/"),
        ("post", f"/cells/{t['cell'].pk}/save/"),
        ("post", f"/cells/{t['cell'].pk}/run/"),
        ("post", f"/cells/{t['cell'].pk}/delete/"),
        ("get", f"/cells/{t['cell'].pk}/estimate/"),
        ("get", f"/datasets/{t['corpus'].pk}/"),
        ("post", f"/datasets/{t['corpus'].pk}/edit/"),
        ("get", f"/datasets/{t['corpus'].pk}/download/"),
        ("get", f"/datasets/{t['corpus'].pk}/delete/"),
        ("post", f"/datasets/{t['corpus'].pk}/delete/"),
        ("get", f"/runs/{t['run'].pk}/"),
        ("get", f"/runs/{t['run'].pk}/events/"),
        ("post", f"/runs/{t['run'].pk}/cancel/"),
        ("post", f"/runs/{t['run'].pk}/resume/"),
        ("get", f"/artifacts/{t['artifact'].pk}/download/"),
        ("get", f"/artifacts/{t['artifact'].pk}/encode/?text=hi"),
    ]


def _api_urls(t) -> list[tuple[str, str]]:
    return [
        ("get", f"/api/notebooks/{t['notebook'].pk}/"),
        ("post", f"/api/notebooks/{t['notebook'].pk}/cells/"),
        ("get", f"/api/cells/{t['cell'].pk}/"),
        ("patch", f"/api/cells/{t['cell'].pk}/"),
        ("post", f"/api/cells/{t['cell'].pk}/run/"),
        ("get", f"/api/datasets/{t['corpus'].pk}/"),
        ("patch", f"/api/datasets/{t['corpus'].pk}/"),
        ("get", f"/api/datasets/{t['corpus'].pk}/download/"),
        ("delete", f"/api/datasets/{t['corpus'].pk}/"),
        ("get", f"/api/runs/{t['run'].pk}/"),
        ("get", f"/api/runs/{t['run'].pk}/events/"),
        ("post", f"/api/runs/{t['run'].pk}/cancel/"),
        ("post", f"/api/runs/{t['run'].pk}/resume/"),
        ("get", f"/api/artifacts/{t['artifact'].pk}/"),
        ("get", f"/api/artifacts/{t['artifact'].pk}/download/"),
    ]


@pytest.mark.parametrize("who", ["mallory", "bob"])
def test_it_hides_every_page_of_a_team_from_outsiders_and_annotators(cast, alphas_things, who):
    client = Client()
    client.force_login(getattr(cast, who))
    for method, url in _page_urls(alphas_things):
        response = getattr(client, method)(url)
        assert response.status_code == 404, f"{who} {method} {url} → {response.status_code}"
    assert alphas_things["cell"].__class__.objects.filter(pk=alphas_things["cell"].pk).exists()


@pytest.mark.parametrize("who", ["mallory", "bob"])
def test_it_hides_every_api_route_of_a_team_from_outsiders_and_annotators(cast, alphas_things, who):
    client = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=getattr(cast, who)).key}")
    for method, url in _api_urls(alphas_things):
        response = getattr(client, method)(url, content_type="application/json")
        assert response.status_code == 404, f"{who} {method} {url} → {response.status_code}"
    for listing in ("/api/notebooks/", "/api/datasets/", "/api/runs/", "/api/artifacts/"):
        assert client.get(listing).json()["count"] == 0


def test_it_lists_only_the_users_teams_things(cast, alphas_things):
    client = Client()
    client.force_login(cast.mallory)
    assert "secret" not in client.get("/notebooks/").content.decode()
    client.force_login(cast.carol)
    assert "secret" in client.get("/notebooks/").content.decode()
    assert client.get(f"/runs/{alphas_things['run'].pk}/").status_code == 200


def test_it_refuses_creating_things_in_another_team(cast):
    client = Client()
    client.force_login(cast.mallory)
    response = client.post("/notebooks/", {"title": "sneaky", "team": cast.team.pk})
    assert response.status_code == 200  # the form refuses a team that is not one of hers
    assert not Notebook.objects.filter(title="sneaky").exists()
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast.mallory).key}")
    assert api.post("/api/notebooks/", {"title": "sneaky", "team": cast.team.pk}, content_type="application/json").status_code == 404
    assert not Notebook.objects.filter(title="sneaky").exists()
