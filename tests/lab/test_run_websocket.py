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


async def test_it_replays_long_histories_in_chunks(cast):
    run = await sync_to_async(_make_run)(cast.team, 1203)
    communicator, connected, _ = await _connect(cast.alice, run.pk)
    assert connected
    received = []
    while len(received) < 1203:
        received += [e["seq"] for e in (await communicator.receive_json_from(timeout=5))["events"]]
    assert received == list(range(1, 1204))
    await communicator.disconnect()
