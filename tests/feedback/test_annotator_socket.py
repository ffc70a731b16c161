"""The annotator page's websocket against the real Redis channel layer: the queue on connect, votes
and skips answered in order with their refs, refusals that store nothing, an annotator taken off the
campaign stopped mid-session, and new items and freed places pushed to an annotator who ran dry."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from lab.asgi import application
from lab.feedback import consumers
from lab.feedback.actions import add_items, set_annotators
from lab.feedback.assignment import take_items
from lab.feedback.models import Assignment, Vote
from tests.feedback.builders import campaign_with_items, pair
from tests.sockets import ANONYMOUS_HEADERS, session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _connect(user, campaign_id):
    headers = await sync_to_async(session_headers)(user) if user else ANONYMOUS_HEADERS
    socket = WebsocketCommunicator(application, f"/ws/campaigns/{campaign_id}/annotate/", headers=headers)
    connected, _ = await socket.connect(timeout=5)
    return socket, connected


async def _ask(socket, message: dict) -> dict:
    await socket.send_json_to(message)
    return await socket.receive_json_from(timeout=5)


async def _votes(**filters) -> list:
    return await sync_to_async(lambda: list(Vote.objects.filter(**filters).values_list("annotator__username", "item_id",
                                                                                         "label", "shown_left")))()


async def test_it_sends_the_queue_then_answers_votes_and_skips_in_order(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=4, overlap=1)
    socket, connected = await _connect(cast.bob, campaign.pk)
    assert connected
    opened = await socket.receive_json_from(timeout=5)
    assert (opened["reply"], opened["status"], opened["done"]) == ("next", 200, 0)
    first, second = [q["item"] for q in opened["queue"]]
    assert set(opened["queue"][0]) == {"item", "prompt", "left", "right", "expires_at"}  # no model names

    await socket.send_json_to({"action": "vote", "ref": 1, "item": first, "choice": "left", "strength": "much",
                               "seconds": 4.5})
    await socket.send_json_to({"action": "vote", "ref": 2, "item": first, "choice": "right"})  # a second tab's
    await socket.send_json_to({"action": "skip", "ref": 3, "item": second})
    voted, again, skipped = [await socket.receive_json_from(timeout=5) for _ in range(3)]

    assert (voted["ref"], voted["status"], voted["duplicate"], voted["done"]) == (1, 201, False, 1)
    assert [q["item"] for q in voted["queue"]][0] == second
    assert (again["ref"], again["status"], again["duplicate"], again["vote"]) == (2, 200, True, voted["vote"])
    assert (skipped["ref"], skipped["reply"], skipped["status"]) == (3, "skip", 200)
    assert second not in [q["item"] for q in skipped["queue"]] and len(skipped["queue"]) == 2
    [(who, item, label, shown_left)] = await _votes(item__campaign=campaign)
    assert (who, item, label == shown_left) == ("bob", first, True)  # stored once, the left side won
    await socket.disconnect()


async def test_it_refuses_outsiders_and_other_campaigns_annotators(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=2)
    for user in (None, cast.mallory, cast.carol):  # anonymous, another team, a member who does not annotate it
        socket, connected = await _connect(user, campaign.pk)
        assert not connected, user
        await socket.disconnect()


async def test_it_refuses_forged_and_malformed_messages_and_stores_nothing(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=3, overlap=1)
    elsewhere = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.carol], name="Carol's")
    carols = await _connect(cast.carol, elsewhere.pk)
    carols_item = (await carols[0].receive_json_from(timeout=5))["queue"][0]["item"]
    socket, _ = await _connect(cast.bob, campaign.pk)
    queue = (await socket.receive_json_from(timeout=5))["queue"]
    not_given = await sync_to_async(lambda: campaign.items.exclude(pk__in=[q["item"] for q in queue]).get().pk)()

    forged = [await _ask(socket, {"action": "vote", "ref": n, "item": item, "choice": "left"})
              for n, item in enumerate((carols_item, not_given, "DROP TABLE"))]
    bad_choice = await _ask(socket, {"action": "vote", "item": queue[0]["item"], "choice": "up"})
    bad_strength = await _ask(socket, {"action": "vote", "item": queue[0]["item"], "choice": "tie", "strength": "much"})
    unknown = await _ask(socket, {"action": "export"})
    await socket.send_to(text_data="not json")
    not_json = await socket.receive_json_from(timeout=5)

    assert [(r["ref"], r["status"], r["detail"]) for r in forged[:2]] == [
        (0, 404, "this item is not in your queue"), (1, 404, "this item is not in your queue")]
    assert forged[2]["status"] == 400 and "item" in forged[2]
    assert bad_choice["status"] == 400 and "choice" in bad_choice
    assert bad_strength["status"] == 400 and "winner" in bad_strength["choice"][0]
    assert unknown["status"] == 400 and not_json["status"] == 400
    assert await _votes() == []
    await socket.disconnect()
    await carols[0].disconnect()


async def test_it_stops_an_annotator_taken_off_the_campaign(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=2)
    socket, _ = await _connect(cast.bob, campaign.pk)
    item = (await socket.receive_json_from(timeout=5))["queue"][0]["item"]

    await sync_to_async(set_annotators)(campaign, [])
    refused = await _ask(socket, {"action": "vote", "ref": 7, "item": item, "choice": "left"})

    assert (refused["ref"], refused["status"]) == (7, 404)
    assert (await socket.receive_output(timeout=5))["code"] == 4404
    assert await _votes() == []


async def test_it_sends_new_items_to_an_annotator_who_ran_dry(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=1, overlap=1)
    socket, _ = await _connect(cast.bob, campaign.pk)
    item = (await socket.receive_json_from(timeout=5))["queue"][0]["item"]
    dry = await _ask(socket, {"action": "vote", "ref": 1, "item": item, "choice": "tie"})
    assert dry["queue"] == [] and await socket.receive_nothing(timeout=0.3)

    await sync_to_async(add_items)(campaign, [pair(41), pair(42), pair(43)])
    pushed = await socket.receive_json_from(timeout=10)

    assert (pushed["reply"], pushed["ref"], pushed["status"], pushed["done"]) == ("next", None, 200, 1)
    assert [q["prompt"] for q in pushed["queue"]] == [pair(41)["prompt"], pair(42)["prompt"]]
    await socket.disconnect()


async def test_it_sends_a_waiting_annotator_the_place_an_abandoned_item_gives_back(cast, monkeypatch):
    monkeypatch.setattr(consumers, "WAITING_LOOK_SECONDS", 0.3)
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.alice, cast.bob], n_items=1,
                                                         overlap=1)
    [taken] = await sync_to_async(take_items)(campaign, cast.alice)
    socket, _ = await _connect(cast.bob, campaign.pk)
    assert (await socket.receive_json_from(timeout=5))["queue"] == []

    await sync_to_async(Assignment.objects.filter(pk=taken.pk).update)(
        expires_at=timezone.now() - timezone.timedelta(seconds=1))  # alice walked away
    pushed = await socket.receive_json_from(timeout=5)
    while not pushed["queue"]:  # a look may have come before the place was free
        pushed = await socket.receive_json_from(timeout=5)

    assert [q["item"] for q in pushed["queue"]] == [taken.item_id]
    await socket.disconnect()
