"""The campaign API and pages against a hostile user: other teams' ids, ids that name nothing, numbers
past 64 bits, deep JSON, absurd overlaps. Each is refused with a 4xx that says what and where, the
same words whether the id is another team's or nobody's, and no username in any answer."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.accounts.actions import add_member, create_team, create_user
from lab.accounts.models import Role
from lab.feedback.actions import set_annotators
from lab.feedback.models import MAX_OVERLAP, Campaign, ComparisonItem, Vote
from lab.runs.models import Run
from tests.feedback.builders import campaign_with_items, pair

pytestmark = pytest.mark.django_db

HUGE = 99999999999999999999  # past 64 bits
DEEP = "[" * 50_000 + "]" * 50_000


def _api(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post(client, url, body):
    return client.post(url, body, content_type="application/json")


def _no_username_in(text: str) -> None:
    for name in get_user_model().objects.values_list("username", flat=True):
        assert name not in text, f"{name!r} given away in {text!r}"


def test_annotators_outside_the_team_are_refused_in_the_same_words_whoever_they_are(cast):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "x")
    nobody = get_user_model().objects.order_by("-pk").first().pk + 1000
    answers = {}
    for who, team, named in ((cast.alice, cast.team, cast.mallory.pk), (cast.mallory, cast.other_team, cast.alice.pk),
                             (cast.mallory, cast.other_team, cast.carol.pk), (cast.alice, cast.team, nobody),
                             (cast.alice, cast.team, HUGE)):
        response = _post(_api(who), "/api/campaigns/", {"team": team.pk, "name": "Probe", "annotators": [named]})
        assert response.status_code == 400, response.content
        _no_username_in(response.content.decode())
        answers[named] = response.json()

    for named, answer in answers.items():
        assert answer == {"annotators": [f"user {named} is not a member of this team"]}
    assert not Campaign.objects.exists()


def test_annotators_of_the_team_are_resolved_by_id_as_ever(cast):
    response = _post(_api(cast.alice), "/api/campaigns/", {"team": cast.team.pk, "name": "Ok",
                                                           "annotators": [cast.bob.pk, str(cast.carol.pk)]})

    assert response.status_code == 201, response.content
    assert set(Campaign.objects.get().annotators.values_list("username", flat=True)) == {"bob", "carol"}


@pytest.mark.parametrize("annotators, error", [
    (["bob"], "a user is named by id (an integer), not str"),
    ([1.5], "a user is named by id (an integer), not float"),
    ([True], "a user is named by id (an integer), not bool"),
    ([[1]], "a user is named by id (an integer), not list"),
    ([-3], "user -3 is not a member of this team"),
])
def test_annotators_that_are_not_ids_are_refused(cast, annotators, error):
    response = _post(_api(cast.alice), "/api/campaigns/", {"team": cast.team.pk, "name": "X", "annotators": annotators})

    assert (response.status_code, response.json()) == (400, {"annotators": [error]})


def test_another_teams_team_and_run_are_refused_as_missing_ones(cast):
    api = _api(cast.alice)
    mallorys_run = Run.objects.create(team=cast.other_team, stage="pretrain", config={}, status="done")
    missing_team = cast.other_team.pk + 1000

    assert _post(api, "/api/campaigns/", {"team": cast.other_team.pk, "name": "X"}).status_code == 404
    assert _post(api, "/api/campaigns/", {"team": missing_team, "name": "X"}).status_code == 404
    too_big = _post(api, "/api/campaigns/", {"team": HUGE, "name": "X"})
    assert too_big.status_code == 400 and list(too_big.json()) == ["team"]
    runs = [_post(api, "/api/campaigns/", {"team": cast.team.pk, "name": "X", "source_run": run})
            for run in (mallorys_run.pk, mallorys_run.pk + 1000, HUGE)]
    assert [r.status_code for r in runs] == [400] * 3
    assert [r.json() for r in runs] == [{"source_run": [f"run {run} is not a run of this team"]}
                                        for run in (mallorys_run.pk, mallorys_run.pk + 1000, HUGE)]
    assert not Campaign.objects.exists()


def test_the_pages_name_no_outsider_either(cast):
    # alice also works in a second team: its people are offered on her form, but not for team Alpha.
    beta = create_team("Beta", cast.alice)
    dave = create_user("dave", "x")
    add_member(beta, dave, Role.MEMBER)
    page = _page(cast.alice)

    made = page.post("/campaigns/", {"team": cast.team.pk, "name": "With dave", "overlap": 2, "annotators": [dave.pk]})
    assert made.status_code == 200 and not Campaign.objects.filter(name="With dave").exists()
    assert f"user {dave.pk} is not a member of this team" in made.content.decode()
    outsider = page.post("/campaigns/", {"team": cast.team.pk, "name": "X", "overlap": 2, "annotators": [cast.mallory.pk]})
    assert outsider.status_code == 200 and "mallory" not in outsider.content.decode()
    assert f"{cast.mallory.pk} is not one of the available choices" in outsider.content.decode()

    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob])
    response = page.post(f"/campaigns/{campaign.pk}/settings/", {"status": "open", "overlap": 2, "guidelines": "",
                                                                 "annotators": [dave.pk]})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"annotators: Select a valid choice. {dave.pk} is not one of the available choices."]
    assert list(campaign.annotators.values_list("username", flat=True)) == ["bob"]
    with pytest.raises(ValueError, match=rf"^user {cast.mallory.pk} is not a member of this team; "
                                         rf"user {dave.pk} is not a member of this team$"):
        set_annotators(campaign, [cast.bob, cast.mallory, dave])


def test_overlap_is_bounded_in_the_api_as_on_the_pages(cast):
    api, page = _api(cast.alice), _page(cast.alice)
    too_many = _post(api, "/api/campaigns/", {"team": cast.team.pk, "name": "X", "overlap": 40_000})
    none = _post(api, "/api/campaigns/", {"team": cast.team.pk, "name": "X", "overlap": 0})
    huge = _post(api, "/api/campaigns/", {"team": cast.team.pk, "name": "X", "overlap": HUGE})

    assert (too_many.status_code, too_many.json()) == (
        400, {"overlap": [f"Ensure this value is less than or equal to {MAX_OVERLAP}."]})
    assert (none.status_code, none.json()) == (400, {"overlap": ["Ensure this value is greater than or equal to 1."]})
    assert huge.status_code == 400 and list(huge.json()) == ["overlap"]
    assert _post(api, "/api/campaigns/", {"team": cast.team.pk, "name": "Y", "overlap": MAX_OVERLAP}).status_code == 201
    campaign = Campaign.objects.get(name="Y")
    page.post(f"/campaigns/{campaign.pk}/settings/", {"status": "open", "overlap": 40_000, "guidelines": ""})
    campaign.refresh_from_db()
    assert campaign.overlap == MAX_OVERLAP
    form = page.post("/campaigns/", {"team": cast.team.pk, "name": "Z", "overlap": 40_000})
    assert f"Ensure this value is less than or equal to {MAX_OVERLAP}." in form.content.decode()


def test_ids_past_64_bits_are_refused_not_a_server_error(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=2, overlap=1)
    bob, alice = _api(cast.bob), _api(cast.alice)
    bob.get(f"/api/campaigns/{campaign.pk}/next/")

    vote = _post(bob, f"/api/campaigns/{campaign.pk}/vote/", {"item": HUGE, "choice": "left"})
    skip = _post(bob, f"/api/campaigns/{campaign.pk}/skip/", {"item": HUGE})
    negative = _post(bob, f"/api/campaigns/{campaign.pk}/vote/", {"item": -1, "choice": "left"})
    assert (vote.status_code, vote.json()) == (400, {"item": ["Ensure this value is less than or equal to 9223372036854775807."]})
    assert (skip.status_code, list(skip.json())) == (400, ["item"])
    assert (negative.status_code, list(negative.json())) == (400, ["item"])
    for url in (f"/api/campaigns/{HUGE}/", f"/api/campaigns/{HUGE}/next/", f"/api/campaigns/{HUGE}/stats/"):
        assert bob.get(url).status_code == 404, url
        assert alice.get(url).status_code == 404, url
    assert _post(bob, f"/api/campaigns/{HUGE}/vote/", {"item": 1, "choice": "left"}).status_code == 404
    assert _post(alice, f"/api/campaigns/{HUGE}/items/", [pair(1)]).status_code == 404
    for url in (f"/campaigns/{HUGE}/", f"/campaigns/{HUGE}/annotate/"):
        assert _page(cast.alice).get(url).status_code == 404, url
    assert Vote.objects.count() == 0


def test_items_with_huge_or_deep_values_name_the_line_and_field(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1)
    api = _api(cast.alice)

    listed = _post(api, f"/api/campaigns/{campaign.pk}/items/", [pair(7), {**pair(8), "artifact_a": HUGE},
                                                                  {**pair(9), "artifact_b": -2}])
    assert listed.status_code == 400
    assert [(e["line"], e["field"], e["error"]) for e in listed.json()["errors"]] == [
        (2, "artifact_a", "must be an artifact id (a positive 64-bit integer) or null, not an integer of 67 bits"),
        (3, "artifact_b", "must be an artifact id (a positive 64-bit integer) or null, not -2")]
    deep_body = api.post(f"/api/campaigns/{campaign.pk}/items/", DEEP, content_type="application/json")
    assert deep_body.status_code == 400 and "nested deeper than 64 levels" in deep_body.json()["detail"]

    big = 10**4200  # as many digits as Python still reads
    lines = [json.dumps(pair(5)), json.dumps(pair(6))[:-1] + ', "rationale": ' + DEEP + "}",
             json.dumps({**pair(7), "artifact_a": big}), '{"prompt": ' + "1" * 5000 + "}",
             json.dumps({**pair(8), "gold": ["x"] * 10_000})]
    upload = SimpleUploadedFile("pairs.jsonl", "\n".join(lines).encode())
    response = api.post(f"/api/campaigns/{campaign.pk}/items/", {"file": upload})

    assert response.status_code == 400
    errors = [(e["line"], e["field"], e["error"]) for e in response.json()["errors"]]
    assert errors[0][:2] == (2, "") and errors[0][2].startswith("is not valid JSON (nested deeper than 64 levels")
    assert errors[1][:2] == (3, "artifact_a") and errors[1][2].endswith(f"not an integer of {big.bit_length()} bits")
    assert errors[2] == (4, "", "holds a number too long to read (over 4,300 digits)")
    assert errors[3][:2] == (5, "gold") and len(errors[3][2]) < 150
    assert ComparisonItem.objects.filter(campaign=campaign).count() == 1  # nothing half-added

    page = _page(cast.alice).post(f"/campaigns/{campaign.pk}/items/",
                                  {"pairs": SimpleUploadedFile("deep.jsonl", ('{"prompt": ' + DEEP + "}").encode())})
    assert page.status_code == 400
    assert "deep.jsonl, line 1: is not valid JSON (nested deeper than 64 levels" in page.content.decode()


def test_the_dashboard_claims_no_certainty_from_one_vote(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1, overlap=1)
    bob = _api(cast.bob)
    [item] = bob.get(f"/api/campaigns/{campaign.pk}/next/").json()["queue"]
    shown_left = "a" if item["left"] == campaign.items.get().response_a else "b"
    _post(bob, f"/api/campaigns/{campaign.pk}/vote/", {"item": item["item"], "choice": "left" if shown_left == "a" else "right"})

    stats = _api(cast.alice).get(f"/api/campaigns/{campaign.pk}/stats/").json()  # "small" (response a) won

    small, large = sorted(stats["leaderboard"], key=lambda r: r["model"] != "small")
    assert (small["unbeaten"], small["never_won"], small["upper"]) == (True, False, None)
    assert (large["unbeaten"], large["never_won"], large["lower"]) == (False, True, None)
    assert small["lower"] < small["elo"] - 200 and large["upper"] > large["elo"] + 200
    assert small["rank"] == large["rank"] == 1 and all(0 < r["elo"] < 2000 for r in (small, large))
    assert "weak prior, one virtual tie of every model against a reference rated 1000" in stats["rating_note"]
    page = _page(cast.alice).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert '"upper": null' in page and "95% interval" in page


HOSTILE_BODIES = [DEEP, "[]", "null", '"x"', "1e400", '{"item": 1e400, "choice": "left", "seconds": 1e400}',
                  '{"item": "0", "choice": {"a": 1}, "strength": [1], "rationale": 5, "seconds": -1}',
                  '{"both_bad": [], "min_votes": 99999999999999999999}', '{"team": [], "name": {}, "overlap": "x"}',
                  '{"item": ' + "9" * 4000 + "}", "{" + '"a": 1, ' * 10_000 + '"b": 2}', "\u0000", '{"item": NaN}']


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_no_malformed_body_reaches_a_server_error(cast, body):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice], n_items=2, overlap=1)
    api = _api(cast.alice)
    api.get(f"/api/campaigns/{campaign.pk}/next/")

    for action in ("", f"{campaign.pk}/items/", f"{campaign.pk}/vote/", f"{campaign.pk}/skip/", f"{campaign.pk}/export/"):
        response = api.post(f"/api/campaigns/{action}", body, content_type="application/json")
        assert response.status_code == 400, (action, response.status_code, response.content[:300])
        _no_username_in(response.content.decode())
    assert Vote.objects.count() == 0 and campaign.items.count() == 2 and Campaign.objects.count() == 1
