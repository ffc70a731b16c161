"""The OpenAI-compatible API (`/v1/`) and streaming generation on a worker: the real `openai` client lists
the team's models and gets a chat completion, streamed and not, equal to the engine's own answer with the
same seed; a bad model, a bad key and another team's model get OpenAI's errors; a slow reader does not hold
the worker and a cancel frees it. Hostile requests are answered in-process, in OpenAI's error shape."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from unittest import mock

import openai
import pytest
from django.test import Client
from kombu.exceptions import OperationalError
from rest_framework.authtoken.models import Token

from lab.hub import generation
from lab.hub.base_models import register_model_folder
from lab.hub.generation import GenerationUnavailable, TooManyRequests, _redis, batches, cancel, relay, start_generation, steps, team_key
from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact
from tests.builders import brought_model
from training.serving import GenerationRequest, ModelCache, stream

CHAT = [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "What news from the court?"}]


def _read(request_id: str, stop_after: int | None = None) -> list[dict]:
    """The request's items; with `stop_after`, cancel once that many tokens came and read on to the end."""
    async def read():
        items = []
        async for item in steps(request_id, timeout_s=60):
            items.append(item)
            if stop_after is not None and len(items) == stop_after:
                await asyncio.to_thread(cancel, request_id)
        return items
    return asyncio.run(read())


@functools.cache
def _cache() -> ModelCache:
    return ModelCache(device="cpu")


def _engine(model, **request) -> tuple[str, dict]:
    """The same answer from the engine in this process: its text and its done item."""
    items = list(stream(_cache(), model, GenerationRequest.from_dict(request)))
    return "".join(i["text"] for i in items[:-1]), items[-1]


def _engine_tokens(model, **request) -> list[dict]:
    return [i for i in stream(_cache(), model, GenerationRequest.from_dict(request)) if i["type"] == "token"]


def _same_logprobs(entries, tokens: list[dict]) -> None:
    assert [e.token for e in entries] == [t["token"] for t in tokens]
    assert [e.logprob for e in entries] == pytest.approx([t["logprob"] for t in tokens], abs=1e-6)
    assert all(e.bytes == list(e.token.encode()) for e in entries)
    assert [[a.token for a in e.top_logprobs] for e in entries] == [[a["text"] for a in t["alternatives"]] for t in tokens]
    assert all(e.logprob <= 0 and len(e.top_logprobs) == 3 for e in entries)


@pytest.mark.e2e
def test_the_openai_client_talks_to_the_teams_model_on_a_worker(cast, processes, data_dir, base_model):
    mine = register_model_folder(cast.team, brought_model(base_model, data_dir, "mine"), "chat base", cast.alice)
    theirs = register_model_folder(cast.other_team, brought_model(base_model, data_dir, "theirs"), "theirs", cast.mallory)
    key = Token.objects.create(user=cast.alice).key
    web = processes.web()
    processes.worker("inference", queues=INFERENCE_QUEUE, pool="solo")
    client = openai.OpenAI(base_url=f"{web}/v1", api_key=key, max_retries=0, timeout=90)

    assert [m.id for m in client.models.list()] == [f"model-{mine.pk}"]
    assert client.models.retrieve(f"model-{mine.pk}").owned_by == cast.team.name

    settings = {"temperature": 0.9, "top_p": 0.95, "seed": 5, "max_tokens": 24}
    expected, done = _engine(base_model, messages=CHAT, temperature=0.9, top_p=0.95, seed=5, max_new_tokens=24)
    answer = client.chat.completions.create(model=f"model-{mine.pk}", messages=CHAT, **settings)
    assert answer.choices[0].message.content == expected and answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == ("length" if done["finish_reason"] == "length" else "stop")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (done["usage"]["prompt_tokens"],
                                                                             done["usage"]["completion_tokens"])
    chunks = list(client.chat.completions.create(model=f"model-{mine.pk}", messages=CHAT, stream=True,
                                                 stream_options={"include_usage": True}, **settings))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[0].choices[0].delta.role == "assistant" and len({c.id for c in chunks}) == 1
    assert chunks[-1].usage.completion_tokens == done["usage"]["completion_tokens"] and len(chunks) > 3

    text, _ = _engine(base_model, prompt="ROMEO:", temperature=0, max_new_tokens=6)
    completion = client.completions.create(model=f"model-{mine.pk}", prompt="ROMEO:", temperature=0, max_tokens=6)
    assert completion.choices[0].text == text and completion.usage.completion_tokens <= 6

    # Log-probabilities: the engine's own (tests/training/test_serving.py checks those against the
    # model's logits), one entry per token, streamed or not, in chat's shape and the legacy one.
    tokens = _engine_tokens(base_model, messages=CHAT, temperature=0.9, top_p=0.95, seed=5, max_new_tokens=24,
                            logprobs=True, alternatives=3)
    scored = client.chat.completions.create(model=f"model-{mine.pk}", messages=CHAT, logprobs=True, top_logprobs=3, **settings)
    assert scored.choices[0].message.content == expected
    _same_logprobs(scored.choices[0].logprobs.content, tokens)
    streamed = [c for c in client.chat.completions.create(model=f"model-{mine.pk}", messages=CHAT, logprobs=True,
                                                          top_logprobs=3, stream=True, **settings) if c.choices]
    _same_logprobs([e for c in streamed if c.choices[0].logprobs for e in c.choices[0].logprobs.content], tokens)
    legacy = client.completions.create(model=f"model-{mine.pk}", prompt="ROMEO:", temperature=0, max_tokens=6, logprobs=2)
    raw = _engine_tokens(base_model, prompt="ROMEO:", temperature=0, max_new_tokens=6, logprobs=True, alternatives=2)
    assert legacy.choices[0].logprobs.tokens == [t["token"] for t in raw]
    assert legacy.choices[0].logprobs.token_logprobs == pytest.approx([t["logprob"] for t in raw], abs=1e-6)
    assert [list(top) for top in legacy.choices[0].logprobs.top_logprobs] == [[a["text"] for a in t["alternatives"]] for t in raw]
    assert legacy.choices[0].logprobs.text_offset == [len("".join(t["text"] for t in raw[:i])) for i in range(len(raw))]

    for name in ("no-such-model", f"model-{theirs.pk}"):
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model=name, messages=CHAT)
        assert missing.value.status_code == 404 and missing.value.code == "model_not_found"
        assert missing.value.response.json()["error"]["param"] == "model"
    with pytest.raises(openai.AuthenticationError) as refused:
        openai.OpenAI(base_url=f"{web}/v1", api_key="not-a-token", max_retries=0).models.list()
    assert refused.value.status_code == 401 and set(refused.value.response.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=f"model-{mine.pk}", messages=[{"role": "user", "content": "word " * 400}])
    assert "no room" in too_long.value.message and too_long.value.param == "messages"

    # A slow reader does not hold the worker: nobody reads the first answer while a second one is served,
    # and the first is all there afterwards. A cancel ends an answer and frees the worker for the next.
    long_request = {"messages": CHAT, "temperature": 0, "max_new_tokens": 200}
    expected, done = _engine(base_model, **long_request)
    assert done["finish_reason"] == "length", "the answer to cancel must run to its length"
    unread = start_generation(mine, {**long_request, "max_new_tokens": 20})
    assert client.chat.completions.create(model=f"model-{mine.pk}", messages=CHAT, max_tokens=3).choices
    assert _read(unread)[-1]["finish_reason"] == "length"
    items = _read(start_generation(mine, long_request), stop_after=3)
    assert items[-1]["type"] == "done" and items[-1]["finish_reason"] == "cancelled"
    assert 3 <= items[-1]["usage"]["completion_tokens"] < 200
    assert expected.startswith("".join(i["text"] for i in items[:-1]))
    assert client.completions.create(model=f"model-{mine.pk}", prompt="ROMEO:", max_tokens=2).choices


def _post(client: Client, path: str, body, key: str | None) -> tuple[int, dict]:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    raw = body if isinstance(body, str) else json.dumps(body)
    response = client.post(path, raw, content_type="application/json", **headers)
    return response.status_code, response.json()["error"] if response.status_code >= 400 else response.json()


@pytest.mark.django_db
def test_hostile_requests_get_openai_errors_that_name_the_parameter(cast, data_dir):
    def checkpoint(team, name, **metadata):
        (data_dir / name).mkdir()
        return Artifact.objects.create(team=team, kind=Artifact.Kind.CHECKPOINT, name=name, path=name, sha256="0" * 64,
                                       metadata=metadata)

    mine, classifier = checkpoint(cast.team, "mine"), checkpoint(cast.team, "spam", task="classification")
    theirs = checkpoint(cast.other_team, "theirs")
    key = Token.objects.create(user=cast.carol).key
    web = Client()

    listed = web.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == [f"model-{mine.pk}"]
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer nope"}, {"HTTP_AUTHORIZATION": key}):
        response = web.get("/v1/models", **headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert web.get("/v1/chat/completions", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 405
    for model in (theirs, classifier):
        response = web.get(f"/v1/models/model-{model.pk}", HTTP_AUTHORIZATION=f"Bearer {key}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"

    chat = {"model": f"model-{mine.pk}", "messages": [{"role": "user", "content": "hi"}]}
    cases = [
        ("/v1/chat/completions", "{not json", 400, None),
        ("/v1/chat/completions", "[" * 50_000 + "]" * 50_000, 400, None),
        ("/v1/chat/completions", [chat], 400, None),
        ("/v1/chat/completions", {**chat, "model": f"model-{theirs.pk}"}, 404, "model"),
        ("/v1/chat/completions", {**chat, "model": f"model-{classifier.pk}"}, 404, "model"),
        ("/v1/chat/completions", {**chat, "model": "model-" + "9" * 400}, 404, "model"),
        ("/v1/chat/completions", {**chat, "model": 12}, 400, "model"),
        ("/v1/chat/completions", {**chat, "n": 2}, 400, "n"),
        ("/v1/chat/completions", {**chat, "logprobs": "yes"}, 400, "logprobs"),
        ("/v1/chat/completions", {**chat, "top_logprobs": 3}, 400, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "logprobs": True, "top_logprobs": 10**30}, 400, "top_logprobs"),
        ("/v1/chat/completions", {**chat, "logprobs": True, "top_logprobs": "3"}, 400, "top_logprobs"),
        ("/v1/completions", {"model": f"model-{mine.pk}", "prompt": "hi", "logprobs": True}, 400, "logprobs"),
        ("/v1/completions", {"model": f"model-{mine.pk}", "prompt": "hi", "logprobs": -1}, 400, "logprobs"),
        ("/v1/chat/completions", {**chat, "stream": "yes"}, 400, "stream"),
        ("/v1/chat/completions", {**chat, "max_tokens": 10**30}, 400, "max_tokens"),
        ("/v1/chat/completions", {**chat, "temperature": "hot"}, 400, "temperature"),
        ("/v1/chat/completions", {**chat, "top_p": 7}, 400, "top_p"),
        ("/v1/chat/completions", {**chat, "stop": ["x"] * 9}, 400, "stop"),
        ("/v1/chat/completions", {**chat, "seed": -1}, 400, "seed"),
        ("/v1/chat/completions", {**chat, "messages": []}, 400, "messages"),
        ("/v1/chat/completions", {**chat, "messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0]"),
        ("/v1/chat/completions", {**chat, "messages": [{"role": "user", "content": {"a": [[[]]]}}]}, 400,
         "messages[0].content"),
        ("/v1/completions", {"model": f"model-{mine.pk}", "prompt": [1, 2, 3]}, 400, "prompt"),
        ("/v1/completions", {"model": f"model-{mine.pk}", "prompt": ""}, 400, "prompt"),
        ("/v1/completions", {"model": f"model-{mine.pk}", "prompt": "hi", "echo": True}, 400, "echo"),
    ]
    for path, body, status, param in cases:
        code, error = _post(web, path, body, key)
        assert (code, error["param"]) == (status, param), (body if len(str(body)) < 200 else str(body)[:50], error)
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert _post(web, "/v1/completions", {"model": f"model-{mine.pk}", "prompt": "hi"}, None)[0] == 401


@pytest.mark.django_db
def test_a_team_that_floods_the_queue_gets_429s_while_another_team_is_still_served(cast, data_dir, settings):
    settings.LAB_INFERENCE_REQUESTS_PER_TEAM = 2
    for name in ("mine", "theirs"):
        (data_dir / name).mkdir()
    mine = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="mine", path="mine", sha256="0" * 64)
    theirs = Artifact.objects.create(team=cast.other_team, kind=Artifact.Kind.CHECKPOINT, name="theirs", path="theirs",
                                     sha256="0" * 64)
    key = Token.objects.create(user=cast.alice).key
    request = {"messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 4}

    queued = [start_generation(mine, request) for _ in range(2)]
    with pytest.raises(TooManyRequests):
        start_generation(mine, request)
    response = Client().post("/v1/chat/completions", json.dumps({"model": f"model-{mine.pk}", **request}),
                             content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 429 and response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "rate_limit_exceeded" and "2 answers" in response.json()["error"]["message"]
    assert start_generation(theirs, request)  # another team's place is its own

    # An answer that ends (here the worker's side, with nobody reading) gives its place back; so does
    # a reader that leaves, and a place nobody gives back expires with its stream.
    relay(queued[0], lambda should_stop: iter([{"type": "done", "finish_reason": "stop"}]))
    again = start_generation(mine, request)

    async def leave(request_id):
        async for _ in batches(request_id, timeout_s=0.2):
            pass
    asyncio.run(leave(again))
    stale = start_generation(mine, request)
    _redis().zadd(team_key(stale), {stale: time.time() - 1})
    latest = start_generation(mine, request)
    assert latest

    # A request the broker could not take holds no place: once it is back, the team asks again.
    relay(latest, lambda should_stop: iter([{"type": "done", "finish_reason": "stop"}]))
    assert _redis().zcard(team_key(stale)) == 1
    with mock.patch.object(generation.client, "send_task", side_effect=OperationalError("the broker is away")):
        with pytest.raises(GenerationUnavailable):
            start_generation(mine, request)
    assert _redis().zcard(team_key(stale)) == 1
