"""The team's models behind OpenAI's API (`/v1/`): `GET /v1/models`, `POST /v1/chat/completions` and
`POST /v1/completions`, streamed as server-sent events or not, so the `openai` client and the tools
built on it can call a checkpoint the lab made.

A key is a user's API token (`/api/token/`), sent as `Authorization: Bearer <token>`; a model is one of
the generative checkpoints of the user's teams, named `model-<artifact id>`; any other is a 404, as a
missing one. Errors have OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with a real
status. The answers come from the inference workers (lab/hub/generation.py); the views are async, so a
wait for a worker blocks nothing else in the web process.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Q
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.authtoken.models import Token

from lab.access import artifacts_for_user, get_artifact_for_user
from lab.hub.generation import END_TYPES, GenerationUnavailable, TooManyRequests, batches, start_generation
from lab.runs.models import Artifact
from training import json_limits
from training.config_checks import ConfigError
from training.generation_request import MAX_ALTERNATIVES

ANSWER_TIMEOUT_S = 120
"""How long a request waits for a worker's next token; the first one includes waiting in the queue
behind the requests before it (one worker answers one at a time) and loading the model."""
NOT_GENERATIVE = ("classification", "reward")
"""Checkpoints whose metadata `task` is one of these score text; they do not write it."""
PARAMS = {"max_new_tokens": "max_tokens", "prefix_token_ids": None, "alternatives": None, "logprobs": None}
"""The OpenAI name of a GenerationRequest field where it differs."""
UNSUPPORTED = {
    "n": lambda v: v not in (None, 1), "best_of": lambda v: v not in (None, 1), "echo": bool, "suffix": bool,
    "tools": bool, "functions": bool, "tool_choice": bool,
    "logit_bias": bool, "presence_penalty": bool, "frequency_penalty": bool,
    "response_format": lambda v: v not in (None, {"type": "text"}),
}
"""Parameters the lab's models do not take, and when a value asks for them."""
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        if self.retry_after_s is not None:
            response["Retry-After"] = str(self.retry_after_s)
        return response


def endpoint(method: str) -> Callable:
    """An API view: `method` only, OpenAIErrors answered as such. The view authenticates (`_user`) in
    the same hop to the database thread as its other lookups: each hop costs time to the first token."""
    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # no cookies: a token in a header authenticates each request
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs) -> HttpResponse:
            try:
                if request.method != method:
                    raise OpenAIError(405, f"{request.method} is not allowed here: use {method}", code="method_not_allowed")
                return await view(request, *args, **kwargs)
            except OpenAIError as error:
                return error.response()
        return wrapper
    return decorate


def _user(request):
    """The user whose API token the request carries (`Authorization: Bearer <token>`), or a 401."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    token = None
    if scheme.lower() in ("bearer", "token") and key.strip():
        token = Token.objects.select_related("user").filter(key=key.strip()).first()
    if token is None or not token.user.is_active:
        raise OpenAIError(401, "Incorrect API key provided: use your lab API token (POST /api/token/) as the key",
                          code="invalid_api_key")
    return token.user


def _models(user):
    # has_key too: without it a checkpoint with no task (NULL IN (…): unknown) would be excluded as well
    not_generative = Q(metadata__has_key="task", metadata__task__in=NOT_GENERATIVE)
    return artifacts_for_user(user).filter(kind=Artifact.Kind.CHECKPOINT).exclude(not_generative).select_related("team")


def model_id(artifact: Artifact) -> str:
    return f"model-{artifact.pk}"


def _model(user, name: Any) -> Artifact:
    """The generative checkpoint named `name` that `user` may use, or a 404 that says so."""
    if not isinstance(name, str) or not name:
        raise OpenAIError(400, "model: give a model id from GET /v1/models", param="model")
    missing = OpenAIError(404, f"The model '{name[:100]}' does not exist or you do not have access to it.",
                          param="model", code="model_not_found")
    match = re.fullmatch(r"model-(\d{1,18})", name)
    if match is None:
        raise missing
    try:
        artifact = get_artifact_for_user(user, match[1])
    except Http404:
        raise missing from None
    if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.metadata.get("task") in NOT_GENERATIVE:
        raise missing
    if not artifact.absolute_path.is_dir():
        raise OpenAIError(404, f"The files of the model '{name}' are gone.", param="model", code="model_not_found")
    return artifact


def _model_object(artifact: Artifact) -> dict[str, Any]:
    return {"id": model_id(artifact), "object": "model", "created": int(artifact.created_at.timestamp()),
            "owned_by": artifact.team.name}


@endpoint("GET")
async def list_models(request) -> JsonResponse:
    models = await sync_to_async(lambda: list(_models(_user(request)).order_by("pk")))()
    return JsonResponse({"object": "list", "data": [_model_object(m) for m in models]})


@endpoint("GET")
async def retrieve_model(request, name: str) -> JsonResponse:
    return JsonResponse(_model_object(await sync_to_async(lambda: _model(_user(request), name))()))


def _body(request) -> dict[str, Any]:
    try:
        body = json_limits.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"The body of the request is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise OpenAIError(400, "The body of the request must be a JSON object")
    for name, asks in UNSUPPORTED.items():
        if asks(body.get(name)):
            raise OpenAIError(400, f"{name}: not supported by the lab's models (one answer per request, no tools "
                                   "or penalties)", param=name, code="unsupported_parameter")
    if not isinstance(body.get("stream", False), bool):
        raise OpenAIError(400, "stream: must be true or false", param="stream")
    return body


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    """The sampling settings of an OpenAI request as GenerationRequest fields (checked by it)."""
    settings = {name: body[name] for name in ("temperature", "top_p", "top_k", "seed") if body.get(name) is not None}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        settings["max_new_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        settings["stop"] = [stop] if isinstance(stop, str) else stop
    return settings


def _count(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ALTERNATIVES:
        raise OpenAIError(400, f"{name}: a whole number from 0 to {MAX_ALTERNATIVES}", param=name)
    return value


def _chat_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """Chat's `logprobs` (true or false) and `top_logprobs` (alternatives per token) as request fields."""
    wanted = body.get("logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise OpenAIError(400, "logprobs: must be true or false", param="logprobs")
    top = _count(body, "top_logprobs")
    if top and not wanted:
        raise OpenAIError(400, "top_logprobs: needs logprobs set to true", param="top_logprobs")
    return {"logprobs": True, "alternatives": top} if wanted else {}


def _completion_logprobs(body: dict[str, Any]) -> dict[str, Any]:
    """The legacy endpoint's `logprobs`: null for none, or how many alternatives per token (0 or more)."""
    return {} if body.get("logprobs") is None else {"logprobs": True, "alternatives": _count(body, "logprobs")}


def _messages(value: Any) -> list[dict[str, str]]:
    """OpenAI's messages as the lab's: a role and text content (a list of text parts is joined)."""
    if not isinstance(value, list) or not value:
        raise OpenAIError(400, "messages: give a list of {role, content} messages", param="messages")
    messages = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise OpenAIError(400, f"{where}: must be an object with a role ({', '.join(ROLES)}) and content", param=where)
        content = message.get("content")
        if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                             and isinstance(p.get("text"), str) for p in content):
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise OpenAIError(400, f"{where}.content: must be text, or a list of text parts", param=f"{where}.content")
        messages.append({"role": ROLES[message["role"]], "content": content})
    return messages


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise OpenAIError(400, "prompt: give one string (token ids and several prompts are not supported)", param="prompt")
    return value


def _send(request, generation: Callable[[dict[str, Any]], dict[str, Any]]) -> tuple[dict[str, Any], Artifact, str, dict[str, Any]]:
    """The request checked and sent to a worker, in one hop to the database thread: its body, the
    model, the request id and the GenerationRequest's fields, which `generation` makes from the body."""
    user = _user(request)
    body = _body(request)
    fields = generation(body)
    artifact = _model(user, body.get("model"))
    try:
        return body, artifact, start_generation(artifact, fields), fields
    except ConfigError as exc:
        raise _refused(exc.field, exc.message) from None
    except GenerationUnavailable as exc:
        raise OpenAIError(503, str(exc), kind="server_error", code="unavailable") from None
    except TooManyRequests as exc:
        raise OpenAIError(429, str(exc), kind="requests", code="rate_limit_exceeded",
                          retry_after_s=exc.retry_after_s) from None


def _refused(field: str | None, message: str) -> OpenAIError:
    field = PARAMS.get(field, field) if field else None
    return OpenAIError(400, f"{field}: {message}" if field else message, param=field)


def _worker_error(item: dict[str, Any]) -> OpenAIError:
    if item.get("field"):
        return _refused(item["field"], item["message"])
    if item.get("code") == "timeout":
        return OpenAIError(503, item["message"], kind="server_error", code="timeout")
    return OpenAIError(500, item["message"], kind="server_error")


def _usage(done: dict[str, Any]) -> dict[str, int]:
    usage = done["usage"]
    return {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}


def _finish(done: dict[str, Any]) -> str:
    return "length" if done["finish_reason"] == "length" else "stop"


class _Answer:
    """One request's answer in OpenAI's shapes: `chat` (chat.completion) or not (text_completion), with
    the log-probabilities of its tokens when the request asked for them (`fields["logprobs"]`)."""

    def __init__(self, chat: bool, artifact: Artifact, fields: dict[str, Any]) -> None:
        self.chat = chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_id(artifact)
        self.with_logprobs = fields.get("logprobs", False)
        self.top = fields.get("alternatives", 0)
        self.offset = 0  # where the next token's text starts in the answer (text_offset)

    def _envelope(self, kind: str, choices: list[dict], **more: Any) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices, **more}

    def logprobs(self, tokens: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The tokens' log-probabilities as chat's `logprobs.content` or the legacy endpoint's lists."""
        if not self.with_logprobs:
            return None
        if self.chat:
            return {"content": [{"token": t["token"], "logprob": t["logprob"], "bytes": list(t["token"].encode()),
                                 "top_logprobs": [{"token": a["text"], "logprob": a["logprob"], "bytes": list(a["text"].encode())}
                                                  for a in t["alternatives"]]} for t in tokens]}
        offsets = []
        for token in tokens:
            offsets.append(self.offset)
            self.offset += len(token["text"])
        return {"tokens": [t["token"] for t in tokens], "token_logprobs": [t["logprob"] for t in tokens],
                "top_logprobs": [{a["text"]: a["logprob"] for a in t["alternatives"]} for t in tokens] if self.top else None,
                "text_offset": offsets}

    def whole(self, tokens: list[dict[str, Any]], done: dict[str, Any]) -> dict[str, Any]:
        text = "".join(t["text"] for t in tokens)
        choice = {"index": 0, "logprobs": self.logprobs(tokens), "finish_reason": _finish(done)}
        if self.chat:
            return self._envelope("chat.completion", [{**choice, "message": {"role": "assistant", "content": text}}],
                                  usage=_usage(done))
        return self._envelope("text_completion", [{**choice, "text": text}], usage=_usage(done))

    def chunk(self, tokens: list[dict[str, Any]], finish: str | None = None, first: bool = False) -> dict[str, Any]:
        """A streamed chunk of the tokens that came together (none: the opening or the closing chunk)."""
        text = "".join(t["text"] for t in tokens)
        logprobs = self.logprobs(tokens) if tokens else None
        if not self.chat:
            return self._envelope("text_completion", [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}])
        delta = ({"role": "assistant", "content": ""} if first else {}) | ({"content": text} if tokens else {})
        return self._envelope("chat.completion.chunk", [{"index": 0, "delta": delta, "logprobs": logprobs,
                                                         "finish_reason": finish}])

    def usage_chunk(self, done: dict[str, Any]) -> dict[str, Any]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return self._envelope(kind, [], usage=_usage(done))


async def _answer(request, generation: Callable[[dict[str, Any]], dict[str, Any]], chat: bool) -> HttpResponse:
    body, artifact, request_id, fields = await sync_to_async(_send)(request, generation)
    # What the worker refuses before answering (a prompt too long, a broken model) gets its status.
    source = aiter(batches(request_id, ANSWER_TIMEOUT_S))
    first = await anext(source)
    if first[0]["type"] == "error":
        await source.aclose()
        raise _worker_error(first[0])
    answer = _Answer(chat, artifact, fields)
    if body.get("stream"):
        options = body.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        response = StreamingHttpResponse(_events(answer, first, source, usage), content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold the tokens back
        return response
    tokens, batch = [], first
    try:
        while True:
            tokens += [item for item in batch if item["type"] == "token"]
            if batch[-1]["type"] in END_TYPES:
                break
            batch = await anext(source)
    finally:
        await source.aclose()
    if batch[-1]["type"] == "error":
        raise _worker_error(batch[-1])
    return JsonResponse(answer.whole(tokens, batch[-1]))


async def _events(answer: _Answer, first: list[dict], source: AsyncIterator[list[dict]], usage: bool) -> AsyncIterator[str]:
    """Server-sent events: a chunk for the tokens of each read from the worker's stream (the first chat
    chunk with the role), one with the finish reason, the usage when asked for, then `[DONE]`; an
    error after the 200 is an `error` event. A chunk holds the tokens that came together, as vLLM's
    stream interval does: one write and one parse for each, however fast the model."""
    def event(data: dict[str, Any]) -> str:
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        if answer.chat:
            yield event(answer.chunk([], first=True))
        batch = first
        while True:
            tokens = [item for item in batch if item["type"] == "token"]
            if any(t["text"] for t in tokens) or (tokens and answer.with_logprobs):
                yield event(answer.chunk(tokens))
            end = batch[-1]
            if end["type"] in END_TYPES:
                break
            batch = await anext(source)
        if end["type"] == "error":
            yield event(_worker_error(end).body())
            return
        yield event(answer.chunk([], finish=_finish(end)))
        if usage:
            yield event(answer.usage_chunk(end))
        yield "data: [DONE]\n\n"
    finally:
        await source.aclose()  # a client that left cancels the answer: the worker is free


@endpoint("POST")
async def chat_completions(request) -> HttpResponse:
    return await _answer(request, lambda body: {"messages": _messages(body.get("messages")), **_settings(body),
                                                **_chat_logprobs(body)}, chat=True)


@endpoint("POST")
async def completions(request) -> HttpResponse:
    # OpenAI's legacy endpoint writes 16 tokens unless told otherwise.
    return await _answer(request, lambda body: {"prompt": _prompt(body.get("prompt")), "max_new_tokens": 16,
                                                **_settings(body), **_completion_logprobs(body)}, chat=False)


urlpatterns = [
    path("models", list_models, name="openai-models"),
    path("models/<str:name>", retrieve_model, name="openai-model"),
    path("chat/completions", chat_completions, name="openai-chat-completions"),
    path("completions", completions, name="openai-completions"),
]
