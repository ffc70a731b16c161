"""The playground's websocket, through the real ASGI application, Redis and the worker's task (run in a
thread of this process instead of a Celery worker: tests/lab/test_openai_api.py takes the one path
through a real worker): answers stream with the inspector's alternatives and equal the engine's own
answer, two stream side by side, a branch continues after the pick, a stop ends the answer. Hostile
messages get a 400 naming the field and the socket stays open; another team's model is a 404."""

import functools
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from lab.asgi import application
from lab.hub import generation
from lab.hub.base_models import register_model_folder
from tests.builders import brought_model
from tests.sockets import ANONYMOUS_HEADERS, session_headers
from training.serving import GenerationRequest, ModelCache, stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

CHAT = [{"role": "user", "content": "What news from the court?"}]
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.fixture
def worker_in_a_thread(monkeypatch):
    """Requests are run by the worker's own task function, each in a thread, as an inference worker would."""
    from workers.tasks import generate_stream

    def send_task(name, args, **options):
        assert (name, options["queue"]) == ("workers.generate_stream", "inference")
        threading.Thread(target=generate_stream, args=args, daemon=True).start()

    monkeypatch.setattr(generation.client, "send_task", send_task)


@pytest.fixture
def models(cast, base_model, data_dir):
    def register(team, owner, name):
        return register_model_folder(team, brought_model(base_model, data_dir, name), name, owner)
    return register(cast.team, cast.alice, "mine"), register(cast.other_team, cast.mallory, "theirs")


@functools.cache
def _engine() -> ModelCache:
    return ModelCache(device="cpu")


async def _open(user):
    socket = WebsocketCommunicator(application, "/ws/playground/", headers=await sync_to_async(session_headers)(user))
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def _answer(socket, ref) -> list[dict]:
    """The items of answer `ref`, up to its done, as the socket sends them."""
    items = []
    while not items or items[-1]["type"] not in ("done", "error"):
        message = await socket.receive_json_from(timeout=60)
        assert message["ref"] == ref, message
        if "item" in message:
            items.append(message["item"])
    return items


async def test_answers_stream_with_their_alternatives_side_by_side_and_a_branch_continues_after_the_pick(
        cast, models, worker_in_a_thread, base_model):
    mine, _ = models
    socket = await _open(cast.carol)
    request = {"messages": CHAT, "temperature": 0.8, "seed": 3, "max_new_tokens": 12, "alternatives": 3}

    await socket.send_json_to({"action": "generate", "ref": "a", "model": mine.pk, "request": request})
    assert await socket.receive_json_from(timeout=10) == {"ref": "a", "started": True, "model": mine.pk}
    answer = await _answer(socket, "a")
    tokens, done = answer[:-1], answer[-1]
    same = list(stream(_engine(), base_model, GenerationRequest.from_dict(request)))
    assert [t["token_id"] for t in tokens] == [t["token_id"] for t in same[:-1]]  # the engine's own answer
    assert done["type"] == "done" and done["usage"]["completion_tokens"] >= len(tokens) > 3
    assert all(len(t["alternatives"]) == 3 and t["alternatives"][0]["prob"] >= t["alternatives"][-1]["prob"] for t in tokens)

    # Side by side: two answers at once, same settings and seed, so the same model answers the same.
    for ref in ("left", "right"):
        await socket.send_json_to({"action": "generate", "ref": ref, "model": mine.pk, "request": request})
    await socket.send_json_to({"action": "generate", "ref": "third", "model": mine.pk, "request": request})
    by_ref: dict = {"left": [], "right": []}
    while not all(items and items[-1]["type"] == "done" for items in by_ref.values()):
        message = await socket.receive_json_from(timeout=60)
        if message["ref"] == "third":
            assert (message["status"], message["field"], message["detail"]) == (400, "ref", "at most 2 answers stream at once")
        elif "item" in message:
            by_ref[message["ref"]].append(message["item"])
    assert [t.get("token_id") for t in by_ref["left"]] == [t.get("token_id") for t in by_ref["right"]] == [
        t.get("token_id") for t in answer]

    # A branch: the answer's first two tokens, then the third position's runner-up instead of its pick.
    pick = next(a for a in tokens[2]["alternatives"] if a["token_id"] != tokens[2]["token_id"])
    prefix = [tokens[0]["token_id"], tokens[1]["token_id"], pick["token_id"]]
    await socket.send_json_to({"action": "generate", "ref": "b", "model": mine.pk,
                               "request": {**request, "prefix_token_ids": prefix}})
    await socket.receive_json_from(timeout=10)
    branch = await _answer(socket, "b")
    expected = list(stream(_engine(), base_model, GenerationRequest.from_dict({**request, "prefix_token_ids": prefix})))
    assert branch[0]["index"] == 3 and [t.get("token_id") for t in branch] == [t.get("token_id") for t in expected]
    assert branch[-1]["usage"]["prompt_tokens"] == done["usage"]["prompt_tokens"] + 3

    # Stop mid-answer: the worker ends it as cancelled.
    await socket.send_json_to({"action": "generate", "ref": 7, "model": mine.pk, "request": {**request, "max_new_tokens": 200}})
    await socket.receive_json_from(timeout=10)
    first = await socket.receive_json_from(timeout=60)
    assert first["item"]["type"] == "token"
    await socket.send_json_to({"action": "stop", "ref": 7})
    rest = await _answer(socket, 7)
    assert rest[-1]["finish_reason"] == "cancelled" and rest[-1]["usage"]["completion_tokens"] < 200
    await socket.disconnect()


async def test_hostile_messages_are_answered_naming_the_field_and_another_teams_model_is_a_404(cast, models, worker_in_a_thread):
    mine, theirs = models
    socket = await _open(cast.alice)

    async def answer(text=None, binary=None) -> dict:
        await socket.send_to(text_data=text, bytes_data=binary)
        return await socket.receive_json_from(timeout=10)

    def generate(ref="r", **fields) -> str:
        return json.dumps({"action": "generate", "ref": ref, "model": mine.pk, "request": {"prompt": "Hi"}, **fields})

    assert (await answer(DEEP))["detail"].startswith("not JSON: nested deeper than 64 levels")
    assert (await answer(binary=b"{}"))["detail"] == "send JSON as a text message, not binary"
    assert (await answer("[1]"))["detail"] == "send a JSON object with an action: generate, stop"
    assert (await answer(generate(ref=None)))["field"] == "ref"
    assert (await answer(generate(ref="x" * 41)))["field"] == "ref"
    assert (await answer(generate(ref=10**30)))["field"] == "ref"
    assert (await answer(json.dumps({"action": "export", "ref": 1})))["detail"] == "send JSON with an action: generate, stop"
    assert await answer(generate(model=theirs.pk)) == {"ref": "r", "status": 404, "field": "model", "detail": "no such model of your team"}
    assert (await answer(generate(model=10**30)))["field"] == "model"
    assert (await answer(generate(model="1")))["status"] == 404  # a digit string is an id, of a model that is not hers
    assert (await answer(generate(request=[1])))["field"] == "request"
    too_hot = await answer(generate(request={"prompt": "Hi", "temperature": 1e9}))
    assert (too_hot["status"], too_hot["field"]) == (400, "temperature")
    assert (await answer(generate(request={"prompt": "Hi", "evil": 1})))["field"] == "evil"
    assert (await answer(generate(request={"prompt": "Hi", "max_new_tokens": 10**30})))["field"] == "max_new_tokens"
    assert (await answer(json.dumps({"action": "stop", "ref": "nothing"})))["field"] == "ref"
    with override_settings(LAB_INFERENCE_REQUESTS_PER_TEAM=0):  # the team has all its answers out
        crowded = await answer(generate())
    assert crowded["status"] == 429 and "as many as a team may" in crowded["detail"]

    await socket.send_to(text_data=generate(request={"prompt": "ROMEO:", "max_new_tokens": 2}))  # still open, still works
    assert (await socket.receive_json_from(timeout=10))["started"] is True
    assert (await _answer(socket, "r"))[-1]["type"] == "done"
    await socket.disconnect()

    anonymous = WebsocketCommunicator(application, "/ws/playground/", headers=ANONYMOUS_HEADERS)
    connected, code = await anonymous.connect(timeout=5)
    assert (connected, code) == (False, 4403)
