"""The campaign through the REST API and the pages: create, add items (JSON or a pairs file with
line+field errors), judge as an annotator, statistics; and everything refused to whom it must be."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.feedback.models import Campaign, ComparisonItem, Vote
from tests.feedback.builders import campaign_with_items, pair

pytestmark = pytest.mark.django_db


def _api(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.create(user=user).key}"})


def test_it_lists_every_campaign_action_in_the_schema():
    paths = set(__import__("yaml").safe_load(Client().get("/api/schema/").content)["paths"])

    for action in ("", "{id}/", "{id}/items/", "{id}/next/", "{id}/vote/", "{id}/skip/", "{id}/stats/", "{id}/export/"):
        assert f"/api/campaigns/{action}" in paths


def test_it_runs_a_campaign_through_the_api(cast):
    alice, bob = _api(cast.alice), _api(cast.bob)
    created = alice.post("/api/campaigns/", {"team": cast.team.pk, "name": "Sums", "overlap": 1,
                                             "annotators": [cast.bob.pk]}, content_type="application/json")
    assert created.status_code == 201, created.content
    cid = created.json()["id"]
    assert alice.post(f"/api/campaigns/{cid}/items/", [pair(1), pair(2)], content_type="application/json").json() == {"added": 2}

    queue = bob.get(f"/api/campaigns/{cid}/next/").json()["queue"]
    assert len(queue) == 2 and set(queue[0]) == {"item", "prompt", "left", "right", "expires_at"}  # no model names
    voted = bob.post(f"/api/campaigns/{cid}/vote/", {"item": queue[0]["item"], "choice": "left", "strength": "much",
                                                     "seconds": 6.5}, content_type="application/json")
    assert voted.status_code == 201 and voted.json()["done"] == 1
    assert [q["item"] for q in voted.json()["queue"]] == [queue[1]["item"]]
    again = bob.post(f"/api/campaigns/{cid}/vote/", {"item": queue[0]["item"], "choice": "right"}, content_type="application/json")
    assert again.status_code == 200 and again.json()["duplicate"] is True

    stats = alice.get(f"/api/campaigns/{cid}/stats/").json()
    assert stats["progress"]["votes"] == 1 and stats["annotators"][0]["annotator"] == "bob"
    assert {r["model"] for r in stats["leaderboard"]} == {"small", "large"}
    assert bob.get(f"/api/campaigns/{cid}/").json().keys() == {"id", "name", "guidelines", "status"}


def test_it_names_the_line_and_field_of_a_bad_pairs_file(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1)
    lines = [json.dumps(pair(5)), '{"prompt": "Hi", "response_a": "Hello"}', "not json",
             json.dumps({**pair(6), "gold": "maybe"})]
    upload = SimpleUploadedFile("pairs.jsonl", "\n".join(lines).encode())

    response = _api(cast.alice).post(f"/api/campaigns/{campaign.pk}/items/", {"file": upload})

    assert response.status_code == 400
    errors = [(e["line"], e["field"]) for e in response.json()["errors"]]
    assert errors == [(2, "response_b"), (3, ""), (4, "gold")]
    assert ComparisonItem.objects.filter(campaign=campaign).count() == 1  # nothing half-added


def test_it_creates_a_campaign_from_a_pairs_file_in_the_browser(cast):
    client = Client()
    client.force_login(cast.alice)
    upload = SimpleUploadedFile("pairs.jsonl", "\n".join(json.dumps(pair(n)) for n in range(3)).encode())

    response = client.post("/campaigns/", {"team": cast.team.pk, "name": "From a file", "overlap": 2,
                                           "annotators": [cast.bob.pk, cast.carol.pk], "pairs": upload})

    campaign = Campaign.objects.get(name="From a file")
    assert response.status_code == 302 and campaign.items.count() == 3
    assert set(campaign.annotators.values_list("username", flat=True)) == {"bob", "carol"}
    page = client.get(f"/campaigns/{campaign.pk}/")
    assert page.status_code == 200 and b"Human leaderboard" in page.content


def test_it_renders_guidelines_as_safe_markdown(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob])
    campaign.guidelines = "Prefer **correct** answers.<script>alert(1)</script>"
    campaign.save()
    client = Client()
    client.force_login(cast.bob)

    page = client.get(f"/campaigns/{campaign.pk}/annotate/").content.decode()

    assert "<strong>correct</strong>" in page and "<script>alert(1)" not in page


def test_it_shows_an_annotator_only_their_campaigns(cast):
    mine = campaign_with_items(cast.team, cast.alice, [cast.bob], name="Bob judges")
    campaign_with_items(cast.team, cast.alice, [cast.carol], name="Carol judges")
    client = Client()
    client.force_login(cast.bob)

    page = client.get("/campaigns/").content.decode()

    assert "Bob judges" in page and "Carol judges" not in page
    assert "Notebooks" not in page and "Datasets" not in page and "New campaign" not in page
    assert client.get(f"/campaigns/{mine.pk}/").status_code == 404  # the dashboard is the team's


def test_it_refuses_outsiders_other_campaigns_and_forged_votes(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=3, overlap=1)
    elsewhere = campaign_with_items(cast.team, cast.alice, [cast.carol], name="Not bob's")
    bob, mallory, carol = _api(cast.bob), _api(cast.mallory), _api(cast.carol)
    queue = bob.get(f"/api/campaigns/{campaign.pk}/next/").json()["queue"]
    not_assigned = campaign.items.exclude(pk__in=[q["item"] for q in queue]).first()
    carols_item = carol.get(f"/api/campaigns/{elsewhere.pk}/next/").json()["queue"][0]["item"]

    refused = [
        bob.get(f"/api/campaigns/{elsewhere.pk}/next/"),  # not his campaign
        bob.post(f"/api/campaigns/{campaign.pk}/vote/", {"item": carols_item, "choice": "left"}, content_type="application/json"),
        bob.post(f"/api/campaigns/{campaign.pk}/vote/", {"item": not_assigned.pk, "choice": "left"}, content_type="application/json"),
        bob.get(f"/api/campaigns/{campaign.pk}/stats/"),  # annotators do not see the dashboard
        bob.post(f"/api/campaigns/{campaign.pk}/items/", [pair(9)], content_type="application/json"),
        mallory.get(f"/api/campaigns/{campaign.pk}/"),
        mallory.get(f"/api/campaigns/{campaign.pk}/next/"),
        mallory.post(f"/api/campaigns/{campaign.pk}/vote/", {"item": queue[0]["item"], "choice": "left"}, content_type="application/json"),
        mallory.post(f"/api/campaigns/{campaign.pk}/export/", {}, content_type="application/json"),
    ]

    assert [r.status_code for r in refused] == [404] * len(refused)
    assert Vote.objects.count() == 0 and ComparisonItem.objects.filter(prompt__startswith="Question 9").count() == 0
    assert mallory.get("/api/campaigns/").json()["results"] == []
    created = mallory.post("/api/campaigns/", {"team": cast.team.pk, "name": "Hijack"}, content_type="application/json")
    assert created.status_code == 404 and not Campaign.objects.filter(name="Hijack").exists()
    outsider = _api(cast.alice).post("/api/campaigns/", {"team": cast.team.pk, "name": "With mallory",
                                                          "annotators": [cast.mallory.pk]}, content_type="application/json")
    assert outsider.json() == {"annotators": [f"user {cast.mallory.pk} is not a member of this team"]}
