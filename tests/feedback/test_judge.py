"""A campaign labelled by a judge (lab/feedback/judges.py), in process: the campaign page queues a judge
run with the campaign's pairs in its folder; the run's judgements become the judge's votes (as its
Output declares) beside the people's, without taking their places; the dashboard shows the judge as an
annotator with its agreement, gold and position bias; the export takes either kind of vote or both.
The judge stage itself: test_judge_stage.py; through a worker: test_judge_worker.py."""

import json

import pytest
from django.test import Client

from lab.feedback import assignment
from lab.feedback.actions import add_items, create_campaign
from lab.feedback.dashboard import campaign_stats
from lab.feedback.export import preference_records
from lab.feedback.models import ComparisonItem, Judge, JudgeVote
from lab.hub.base_models import register_model_folder
from lab.runs.models import Artifact, Run, Status
from lab.runs.outputs import register_output
from tests.builders import brought_model
from tests.feedback.test_judge_stage import tiny_reward_model
from training.judge import reward_judgement, rubric_judgement
from training.judge_config import JUDGEMENTS_FILE, PAIRS_FILE

# The better answer is known by construction: the correct sum. Gold says which it is.
GOLD = ["a", "a", "b", "b", ""]
# What the people said (canonically), per item: on item 4 they disagree, item 5 they have not judged.
PEOPLE = {"bob": ["a", "a", "b", "b"], "carol": ["a", "a", "b", "a"]}
# The judge's two answers per item (P(first shown is better) with a first, with b first): right on
# items 1, 3 and 4, wrong on 2, and on 5 it preferred whatever it was shown first (a tie).
ANSWERS = [(0.9, 0.2), (0.3, 0.6), (0.4, 0.7), (0.1, 0.9), (0.8, 0.7)]


def arithmetic(n: int, gold: str) -> dict:
    right, wrong = f"It is {2 * n}.", f"It is {2 * n + 1}."
    a, b = (right, wrong) if gold != "b" else (wrong, right)
    return {"prompt": f"What is {n} + {n}?", "response_a": a, "response_b": b, "model_a": "m1", "model_b": "m2",
            "gold": gold or None}


@pytest.fixture
def campaign(cast):
    campaign = create_campaign(cast.team, "Sums", guidelines="Prefer the **correct** sum.", overlap=2,
                               annotators=[cast.bob, cast.carol], created_by=cast.alice)
    add_items(campaign, [arithmetic(n, gold) for n, gold in enumerate(GOLD, start=1)])
    return campaign


@pytest.fixture
def judge_model(cast, base_model, data_dir) -> Artifact:
    return register_model_folder(cast.team, brought_model(base_model, data_dir, "judge"), "chat base", cast.alice)


def people_vote(campaign, cast) -> list[ComparisonItem]:
    items = list(campaign.items.order_by("pk"))
    for name, labels in PEOPLE.items():
        annotator = getattr(cast, name)
        for _ in labels:
            (taken, *_) = assignment.take_items(campaign, annotator, depth=1)
            wanted = labels[items.index(next(i for i in items if i.pk == taken.item_id))]
            assignment.record_vote(campaign, annotator, taken.item_id, "left" if taken.left == wanted else "right", seconds=5)
    return items


def judge_error(response) -> str:
    html = response.content.decode()
    return html[html.find('data-role="judge-error"'):][:300]


def judge_it(page, campaign, artifact) -> Judge:
    response = page.post(f"/campaigns/{campaign.pk}/judge/", {"model": artifact.pk})
    assert response.status_code == 302 and response["Location"] == f"/campaigns/{campaign.pk}/", judge_error(response)
    return Judge.objects.get(campaign=campaign)


def finish(judge: Judge, items) -> dict:
    """What the judge run reports at its end, as the stage writes it, registered as the run's events are."""
    path = judge.run.output_dir / JUDGEMENTS_FILE
    path.write_text("".join(json.dumps(rubric_judgement(item.pk, p_ab, p_ba, (0.5, 0.5))) + "\n"
                            for item, (p_ab, p_ba) in zip(items, ANSWERS, strict=True)))
    event = {"type": "artifact", "kind": "judgements", "path": str(path), "metadata": {}}
    register_output(judge.run, event)
    return event


def test_a_judge_run_labels_the_campaign_beside_the_people(cast, campaign, judge_model):
    items = people_vote(campaign, cast)
    page = Client()
    page.force_login(cast.alice)
    judge = judge_it(page, campaign, judge_model)

    run = judge.run
    assert (run.stage, run.queue, run.status, run.team) == ("judge", "gpu", Status.QUEUED, cast.team)
    assert run.config["method"] == "rubric" and run.config["guidelines"] == "Prefer the **correct** sum."
    assert run.config["model_path"] == str(judge_model.absolute_path) and run.config["output_dir"] == str(run.output_dir)
    assert run.inputs["model"]["id"] == judge_model.pk and run.inputs["campaign"]["id"] == campaign.pk
    pairs = [json.loads(line) for line in (run.output_dir / PAIRS_FILE).read_text().splitlines()]
    assert [(p["item"], p["response_a"], p["response_b"]) for p in pairs] == [(i.pk, i.response_a, i.response_b) for i in items]
    assert judge.method == "rubric" and judge.name == f"judge · chat base (run {run.pk})"

    event = finish(judge, items)
    assert list(JudgeVote.objects.filter(judge=judge).values_list("label", flat=True)) == ["a", "b", "b", "b", "tie"]
    register_output(judge.run, event)  # the same output again adds nothing
    assert JudgeVote.objects.filter(judge=judge).count() == 5
    # The judge holds no annotator's place: each item still waits for exactly its people's votes.
    assert [i.vote_count for i in campaign.items.order_by("pk")] == [2, 2, 2, 2, 0]

    stats = campaign_stats(campaign)
    assert stats["progress"]["votes"] == 8 and stats["labels"]["tie"] == 0  # the people's figures stay theirs
    rows = {row["annotator"]: row for row in stats["annotators"]}
    row = rows[judge.name]
    assert row["judge"] == {"id": judge.pk, "method": "rubric", "run": run.pk, "status": "queued"}
    assert row["votes"] == 5 and row["median_seconds"] is None and row["left_wins"] is None
    assert row["gold"] == {"n": 4, "hits": 3, "rate": 0.75}
    # The people's majority is unique on items 1-3 (a, a, b); the judge said a, b, b: 2 of 3, and
    # κ = (2/3 - 4/9) / (1 - 4/9) = 0.4 (judge a:1 b:2, majority a:2 b:1).
    assert row["majority"] == {"n": 3, "hits": 2, "rate": pytest.approx(2 / 3)}
    assert row["majority_kappa"] == pytest.approx(0.4)
    # Ten answers, all picking a response: the first shown won in items 1-4 once each, and twice in 5.
    assert row["first_wins"] == {"n": 10, "hits": 6, "rate": 0.6}
    assert rows["bob"]["majority_kappa"] is not None and "judge" not in rows["bob"]

    html = page.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Label with a judge" in html and f'href="/runs/{run.pk}/"' in html and "chat base" in html
    assert page.get(f"/runs/{run.pk}/").status_code == 200  # a run of no cell


def test_the_export_takes_people_judges_or_both_and_marks_the_judges(cast, campaign, judge_model):
    items = people_vote(campaign, cast)
    page = Client()
    page.force_login(cast.alice)
    judge = judge_it(page, campaign, judge_model)
    finish(judge, items)

    both, _, dropped = preference_records(campaign)
    assert [(r["item"], r["votes"], r["judges"]) for r in both] == [
        (items[0].pk, 3, [judge.name]), (items[1].pk, 3, [judge.name]), (items[2].pk, 3, [judge.name]),
        (items[3].pk, 3, [judge.name])]  # item 4: b, a and the judge's b
    assert both[3]["chosen"] == items[3].response_b and both[3]["annotators"] == ["bob", "carol", judge.name]
    assert dropped == {"tie": 1, "both_bad": 0, "disagreement": 0}  # item 5: the judge's tie alone
    people, _, dropped = preference_records(campaign, labels_from="people")
    assert [r["item"] for r in people] == [i.pk for i in items[:3]] and all(r["judges"] == [] for r in people)
    assert dropped["disagreement"] == 1
    judges, _, _ = preference_records(campaign, labels_from="judges")
    assert [(r["item"], r["chosen"]) for r in judges] == [(i.pk, i.response_a if label == "a" else i.response_b)
                                                        for i, label in zip(items[:4], "abbb", strict=True)]
    response = page.post(f"/campaigns/{campaign.pk}/export/", {"both_bad": "drop", "min_votes": 1, "labels_from": "judges"})
    assert response.status_code == 302 and "/datasets/" in response["Location"]
    assert page.post(f"/api/campaigns/{campaign.pk}/export/", {"labels_from": "robots"},
                     content_type="application/json").status_code == 400


def test_the_judge_route_refuses_other_teams_and_bad_values(cast, campaign, judge_model, base_model, data_dir):
    theirs = register_model_folder(cast.other_team, brought_model(base_model, data_dir, "theirs"), "theirs", cast.mallory)
    classifier = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="spam classifier",
                                         path=judge_model.path, sha256="0" * 64, metadata={"task": "classification"})
    page, outsider = Client(), Client()
    page.force_login(cast.alice)
    outsider.force_login(cast.mallory)
    url = f"/campaigns/{campaign.pk}/judge/"

    assert outsider.post(url, {"model": theirs.pk}).status_code == 404  # not their campaign
    assert outsider.post(url, {"model": judge_model.pk}).status_code == 404
    assert page.post(url, {"model": theirs.pk}).status_code == 404  # not this team's model
    assert page.post(url, {"model": 2**62}).status_code == 404
    annotator = Client()
    annotator.force_login(cast.bob)
    assert annotator.post(url, {"model": judge_model.pk}).status_code == 404  # annotators see only their queue
    assert page.get(url).status_code == 405
    assert page.post("/campaigns/99999999999999999999999/judge/", {"model": judge_model.pk}).status_code == 404
    for value in ("", "abc", "-1", "0", "1.5", str(2**70), "1e3"):
        response = page.post(url, {"model": value})
        assert response.status_code == 400 and "model:" in response.content.decode(), value
    deep = page.post(url, "[" * 50_000 + "]" * 50_000, content_type="application/json")
    assert deep.status_code == 400 and "model:" in deep.content.decode()
    response = page.post(url, {"model": classifier.pk})
    assert response.status_code == 400 and "cannot judge" in response.content.decode()
    empty = create_campaign(cast.team, "Empty", created_by=cast.alice)
    response = page.post(f"/campaigns/{empty.pk}/judge/", {"model": judge_model.pk})
    assert response.status_code == 400 and "no items to judge" in response.content.decode()
    assert not Run.objects.exists() and not Judge.objects.exists()


def test_a_reward_model_of_the_team_judges_by_its_scores(cast, campaign, chat_tokenizer_path, data_dir):
    folder = tiny_reward_model(data_dir / "reward", chat_tokenizer_path)
    reward = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="taste", path="reward",
                                     sha256="0" * 64, metadata={"task": "reward"})
    page = Client()
    page.force_login(cast.alice)
    judge = judge_it(page, campaign, reward)
    assert judge.method == "reward" and judge.run.config["method"] == "reward"
    assert judge.run.config["model_path"] == str(folder)
    items = list(campaign.items.order_by("pk"))
    path = judge.run.output_dir / JUDGEMENTS_FILE
    path.write_text("".join(json.dumps(reward_judgement(i.pk, 1.0 if gold != "b" else -1.0, 0.0)) + "\n"
                            for i, gold in zip(items, GOLD, strict=True)))
    register_output(judge.run, {"type": "artifact", "kind": "judgements", "path": str(path), "metadata": {}})
    (row,) = [r for r in campaign_stats(campaign)["annotators"] if r.get("judge")]
    assert row["gold"] == {"n": 4, "hits": 4, "rate": 1.0} and row["first_wins"] is None  # shown no order
    run = judge.run
    campaign.delete()  # while a judge runs: its output then has nowhere to go, and is no error
    assert register_output(run, {"type": "artifact", "kind": "judgements", "path": str(path), "metadata": {}}) == []
