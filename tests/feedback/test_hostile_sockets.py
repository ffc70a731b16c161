"""A campaign's websockets against hostile messages, through the real ASGI application and Redis
channel layer: every malformed message gets a 400 with a reason, the socket stays open and still
works, and nothing is stored."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lab.asgi import application
from lab.feedback.models import Vote
from tests.feedback.builders import campaign_with_items
from tests.sockets import session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

HUGE = 99999999999999999999
DEEP = "[" * 50_000 + "]" * 50_000


async def _open(user, path):
    socket = WebsocketCommunicator(application, path, headers=await sync_to_async(session_headers)(user))
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def _answer(socket, text: str | None = None, binary: bytes | None = None) -> dict:
    await socket.send_to(text_data=text, bytes_data=binary)
    return await socket.receive_json_from(timeout=5)


async def test_the_annotator_socket_answers_every_malformed_message_and_stays_open(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=3, overlap=1)
    socket = await _open(cast.bob, f"/ws/campaigns/{campaign.pk}/annotate/")
    item = (await socket.receive_json_from(timeout=5))["queue"][0]["item"]

    def vote(**fields) -> str:
        return json.dumps({"action": "vote", "ref": 1, "item": item, "choice": "left", **fields})

    deep = await _answer(socket, '{"action": "vote", "ref": 2, "item": ' + DEEP + "}")
    not_json = await _answer(socket, "{'action': 'vote'}")
    binary = await _answer(socket, binary=b'{"action": "next"}')
    nan = await _answer(socket, vote(seconds=1).replace('"seconds": 1', '"seconds": NaN'))
    long_number = await _answer(socket, '{"action": "vote", "item": ' + "9" * 5000 + "}")
    a_list = await _answer(socket, '[{"action": "vote"}]')
    a_string = await _answer(socket, '"vote"')
    action_list = await _answer(socket, json.dumps({"action": ["vote"], "ref": 3}))
    unknown = await _answer(socket, json.dumps({"action": "export", "ref": 4}))
    missing = await _answer(socket, json.dumps({"action": "vote", "ref": 5}))
    huge = await _answer(socket, vote(item=HUGE, ref=6))
    wrong_types = await _answer(socket, vote(item={"id": 1}, choice=["left"], seconds="slow", ref=7))
    null_in_text = await _answer(socket, vote(rationale="a\u0000b", ref=8))
    huge_skip = await _answer(socket, json.dumps({"action": "skip", "item": -HUGE, "ref": 9}))

    for reply in (deep, not_json, binary, nan, long_number, a_list, a_string, action_list, unknown):
        assert reply["status"] == 400 and reply["reply"] is None, reply
    assert deep["detail"].startswith("not JSON: nested deeper than 64 levels")
    assert not_json["detail"].startswith("not JSON: Expecting property name")
    assert binary["detail"] == "send JSON as a text message, not binary"
    assert nan["detail"] == "not JSON the lab reads: Out of range float values are not JSON compliant"
    assert long_number["detail"] == "not JSON the lab reads: Exceeds the limit (4300 digits) for integer string conversion"
    assert a_list["detail"] == "send a JSON object with an action (vote, skip, next), not an array"
    assert a_string["detail"] == "send a JSON object with an action (vote, skip, next), not a string"
    assert (action_list["ref"], action_list["detail"]) == (3, "send JSON with an action: vote, skip, next")
    assert (unknown["ref"], unknown["detail"]) == (4, "send JSON with an action: vote, skip, next")
    assert (missing["ref"], missing["status"], sorted(k for k in missing if k not in ("reply", "ref", "status"))) == (
        5, 400, ["choice", "item"])
    assert (huge["ref"], huge["status"], huge["item"]) == (
        6, 400, ["Ensure this value is less than or equal to 9223372036854775807."])
    assert (wrong_types["ref"], wrong_types["status"]) == (7, 400)
    assert {"item", "choice", "seconds"} <= set(wrong_types)
    assert (null_in_text["ref"], null_in_text["status"], list(null_in_text["rationale"])) == (
        8, 400, ["Null characters are not allowed."])
    assert (huge_skip["ref"], huge_skip["status"], "item" in huge_skip) == (9, 400, True)
    assert await sync_to_async(Vote.objects.count)() == 0

    voted = await _answer(socket, vote(ref=10))  # still open, and still works
    assert (voted["ref"], voted["status"]) == (10, 201)
    await socket.disconnect()


async def test_the_dashboard_socket_takes_no_messages_but_survives_them(cast):
    campaign = await sync_to_async(campaign_with_items)(cast.team, cast.alice, [cast.bob], n_items=1)
    socket = await _open(cast.alice, f"/ws/campaigns/{campaign.pk}/")
    assert "stats" in await socket.receive_json_from(timeout=5)

    deep = await _answer(socket, DEEP)
    message = await _answer(socket, json.dumps({"action": "vote"}))

    assert deep["status"] == 400 and deep["detail"].startswith("not JSON: nested deeper than 64 levels")
    assert message == {"status": 400, "detail": "the dashboard's socket only sends; it takes no messages"}
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


@pytest.mark.parametrize("path", [f"/ws/campaigns/{HUGE}/annotate/", f"/ws/campaigns/{HUGE}/", f"/ws/runs/{HUGE}/"])
async def test_an_id_past_64_bits_is_refused_like_a_missing_one(cast, path):
    socket = WebsocketCommunicator(application, path, headers=await sync_to_async(session_headers)(cast.alice))
    connected, code = await socket.connect(timeout=5)

    assert (connected, code) == (False, 4404)
    await socket.disconnect()
