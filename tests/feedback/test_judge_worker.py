"""A judge labels a campaign through a real worker: the campaign page queues the run, the worker runs
the judge stage on the pairs the lab wrote, and the judge's votes reach the dashboard and the export."""

import pytest
from django.test import Client

from lab.feedback.actions import add_items, create_campaign
from lab.feedback.dashboard import campaign_stats
from lab.feedback.export import preference_records
from lab.feedback.models import Judge, JudgeVote
from lab.hub.base_models import register_model_folder
from lab.runs.models import Status
from tests.builders import brought_model, run_status
from tests.conftest import wait_for
from tests.feedback.test_judge import GOLD, arithmetic

pytestmark = pytest.mark.e2e


def test_a_checkpoint_labels_a_campaign_on_a_worker(cast, processes, data_dir, base_model):
    model = register_model_folder(cast.team, brought_model(base_model, data_dir, "judge"), "chat base", cast.alice)
    campaign = create_campaign(cast.team, "Sums", guidelines="Prefer the correct sum.", annotators=[cast.bob],
                               created_by=cast.alice)
    add_items(campaign, [arithmetic(n, gold) for n, gold in enumerate(GOLD, start=1)])
    processes.worker("w1")
    page = Client()
    page.force_login(cast.alice)

    assert page.post(f"/campaigns/{campaign.pk}/judge/", {"model": model.pk}).status_code == 302
    judge = Judge.objects.get(campaign=campaign)
    wait_for(lambda: run_status(judge.run) not in (Status.QUEUED, Status.RUNNING), timeout=240, what=f"run {judge.run.pk}")
    judge.run.refresh_from_db()
    assert judge.run.status == Status.SUCCEEDED, f"{judge.run.error_field}: {judge.run.error}"

    votes = list(JudgeVote.objects.filter(judge=judge).order_by("item_id"))
    assert [v.item_id for v in votes] == list(campaign.items.order_by("pk").values_list("pk", flat=True))
    for vote in votes:
        orders = vote.answers["orders"]
        assert [o["first"] for o in orders] == ["a", "b"] and all(0 < o["p_first"] < 1 for o in orders)
        assert vote.label == (orders[0]["choice"] if orders[0]["choice"] == orders[1]["choice"] else "tie")
    (row,) = [r for r in campaign_stats(campaign)["annotators"] if r.get("judge")]
    decisive = [o for v in votes for o in v.answers["orders"] if o["choice"] != "tie"]
    assert row["votes"] == 5 and row["judge"]["status"] == Status.SUCCEEDED
    assert row["gold"]["n"] == 4 and row["gold"]["hits"] == sum(v.label == v.item.gold for v in votes if v.item.gold)
    assert row["first_wins"]["n"] == len(decisive)
    pairs, _, dropped = preference_records(campaign, labels_from="judges")
    assert len(pairs) + dropped["tie"] == 5 and all(p["judges"] == [judge.name] for p in pairs)
    assert judge.name in page.get(f"/campaigns/{campaign.pk}/").content.decode()
