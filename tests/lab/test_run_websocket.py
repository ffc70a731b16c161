"""The run websocket against the real Redis channel layer: auth, access, replay after ?after=, live."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from lab.asgi import application
from lab.runs.models import Run
from lab.runs.streaming import publish
from tests.sockets import ANONYMOUS_HEADERS, session_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _make_run(team, n_events: int) -> Run:
    run = Run.objects.create(team=team, stage="pretrain", config={}, status="running")
    for i in range(n_events):
        run.append_event("metric", step=i, values={"loss": 5.0 - i * 0.1})
    return run


async def _connect(user, run_id, after=0):
    headers = await sync_to_async(session_headers)(user) if user else ANONYMOUS_HEADERS
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/?after={after}", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


async def test_it_rejects_anonymous_and_outsiders(cast):
    run = await sync_to_async(_make_run)(cast.team, 3)
    for user in (None, cast.mallory, cast.bob):  # bob only annotates: he sees no runs
        communicator, connected, _ = await _connect(user, run.pk)
        assert not connected, f"{user} should not see run {run.pk}"
        await communicator.disconnect()


async def test_it_rejects_a_foreign_origin(cast):
    run = await sync_to_async(_make_run)(cast.team, 1)
    headers = [h for h in await sync_to_async(session_headers)(cast.alice) if h[0] != b"origin"]
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=headers + [(b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_it_replays_after_seq_then_streams_live(cast):
    run = await sync_to_async(_make_run)(cast.team, 5)
    communicator, connected, _ = await _connect(cast.carol, run.pk, after=2)
    assert connected
    replay = await communicator.receive_json_from(timeout=5)
    assert replay["replay"] is True
    assert [e["seq"] for e in replay["events"]] == [3, 4, 5]
    assert replay["run"]["status"] == "running"

    event = await sync_to_async(run.append_event)("metric", step=99, values={"loss": 1.5})
    await sync_to_async(publish)(run, [event.as_message()])
    live = await communicator.receive_json_from(timeout=5)
    assert [e["seq"] for e in live["events"]] == [6]
    assert live["events"][0]["values"] == {"loss": 1.5}
    await communicator.disconnect()


async def test_events_the_group_did_not_bring_are_read_from_the_database_first(cast):
    """Published while the socket was out of its group (a Redis outage): the next live batch comes
    after what it missed, read from the database, so the page never sees a gap."""
    run = await sync_to_async(_make_run)(cast.team, 2)
    communicator, connected, _ = await _connect(cast.alice, run.pk)
    assert connected and [e["seq"] for e in (await communicator.receive_json_from(timeout=5))["events"]] == [1, 2]

    missed = [await sync_to_async(run.append_event)("metric", step=i, values={"loss": 1.0}) for i in (3, 4)]
    live = await sync_to_async(run.append_event)("metric", step=5, values={"loss": 0.9})
    await sync_to_async(publish)(run, [missed[1].as_message(), live.as_message()])  # seq 3 never published

    received = []
    while len(received) < 3:
        received += [e["seq"] for e in (await communicator.receive_json_from(timeout=5))["events"]]
    assert received == [3, 4, 5]
    await communicator.disconnect()


async def test_it_replays_long_histories_in_chunks(cast):
    run = await sync_to_async(_make_run)(cast.team, 1203)
    communicator, connected, _ = await _connect(cast.alice, run.pk)
    assert connected
    received = []
    while len(received) < 1203:
        received += [e["seq"] for e in (await communicator.receive_json_from(timeout=5))["events"]]
    assert received == list(range(1, 1204))
    await communicator.disconnect()


@pytest.mark.parametrize("after", ["abc", "-1", "1.5", "99999999999999999999", "%00"])
async def test_it_refuses_an_after_that_is_not_a_seq(cast, after):
    run = await sync_to_async(_make_run)(cast.team, 2)
    communicator, connected, _ = await _connect(cast.alice, run.pk, after=after)
    assert connected
    refused = await communicator.receive_json_from(timeout=5)
    assert refused["status"] == 400
    # The words of the events page and the API (lab/params.py): one parser of `after`, one behaviour.
    assert refused["detail"] in ("after: Enter a whole number.",
                                 "after: Ensure this value is greater than or equal to 0.",
                                 "after: Ensure this value is less than or equal to 9223372036854775807.")
    assert (await communicator.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4400}


async def test_it_answers_messages_it_does_not_take_and_stays_open(cast):
    run = await sync_to_async(_make_run)(cast.team, 1)
    communicator, connected, _ = await _connect(cast.alice, run.pk)
    assert connected and (await communicator.receive_json_from(timeout=5))["replay"] is True

    await communicator.send_to(text_data="[" * 50_000 + "]" * 50_000)
    deep = await communicator.receive_json_from(timeout=5)
    await communicator.send_to(bytes_data=b"\x00\x01")
    binary = await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"after": 0})
    message = await communicator.receive_json_from(timeout=5)

    assert deep["status"] == 400 and deep["detail"].startswith("not JSON: nested deeper than 64 levels")
    assert binary == {"status": 400, "detail": "send JSON as a text message, not binary"}
    assert message == {"status": 400, "detail": "the run's socket only sends; it takes no messages"}
    event = await sync_to_async(run.append_event)("metric", step=1, values={"loss": 1.0})
    await sync_to_async(publish)(run, [event.as_message()])
    assert [e["seq"] for e in (await communicator.receive_json_from(timeout=5))["events"]] == [2]
    await communicator.disconnect()
