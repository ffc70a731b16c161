"""Asking a model on a worker while a person waits: the request goes to the `inference` queue and the
answer comes back through Celery's result backend. The view is async, so a wait of seconds blocks no
other request of the web process."""

import asyncio

from asgiref.sync import sync_to_async
from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from lab.access import get_artifact_for_user
from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact
from lab.task_client import client
from training import json_limits
from training.config_checks import ConfigError

MAX_TEXTS = 16
MAX_TEXT_CHARS = 5000
ANSWER_TIMEOUT_S = 60


def _model_for_user(user, pk, task: str) -> Artifact:
    """A checkpoint of the user's teams made for `task` (its metadata says so), with its files."""
    artifact = get_artifact_for_user(user, pk)
    if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.metadata.get("task") != task:
        raise Http404(f"not a {task} model")
    if not artifact.absolute_path.is_dir():
        raise Http404("the files of this model are gone")
    return artifact


def _body(body: bytes, example: str) -> dict | str:
    """The request's JSON object, or what is wrong with it."""
    try:
        data = json_limits.loads(body or b"{}")
    except ValueError:
        return f"the body must be JSON: {example}"
    return data if isinstance(data, dict) else f"the body must be a JSON object: {example}"


def _texts(body: bytes) -> list[str] | str:
    """The texts of a request `{"texts": [...]}` or `{"text": "..."}`, or what is wrong with it."""
    data = _body(body, '{"texts": ["…"]}')
    if isinstance(data, str):
        return data
    texts = data.get("texts", [data["text"]] if "text" in data else None)
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        return "texts: give one or more non-empty strings"
    if len(texts) > MAX_TEXTS:
        return f"texts: at most {MAX_TEXTS} at a time"
    return [t[:MAX_TEXT_CHARS] for t in texts]


def _scoring(body: bytes) -> tuple[str, list[str]]:
    """(prompt, responses) of a request `{"prompt": "...", "responses": [...]}` (or `"response"`); a
    ConfigError names the field that is wrong. A text past MAX_TEXT_CHARS is refused, not cut: a
    reward is read at the response's end."""
    data = _body(body, '{"prompt": "…", "response": "…"}')
    if isinstance(data, str):
        raise ConfigError("body", data)
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("prompt", "give a non-empty string")
    responses = data.get("responses", [data["response"]] if "response" in data else None)
    if not isinstance(responses, list) or not responses or not all(isinstance(r, str) and r.strip() for r in responses):
        raise ConfigError("responses", "give one or more non-empty strings")
    if len(responses) > MAX_TEXTS:
        raise ConfigError("responses", f"at most {MAX_TEXTS} at a time")
    for name, text in (("prompt", prompt), *(("responses", r) for r in responses)):
        if len(text) > MAX_TEXT_CHARS:
            raise ConfigError(name, f"at most {MAX_TEXT_CHARS} characters each, not {len(text)}")
    return prompt, responses


async def _ask_worker(task: str, args: list):
    """The answer of an inference worker to `task`, or the JsonResponse that says why there is none."""
    try:
        result = client.send_task(task, args=args, queue=INFERENCE_QUEUE)
    except (OperationalError, RedisError, OSError):
        return JsonResponse({"error": "the task queue is unreachable: try again in a minute"}, status=503)
    try:
        return await asyncio.to_thread(result.get, timeout=ANSWER_TIMEOUT_S)
    except CeleryTimeout:
        return JsonResponse({"error": f"no inference worker answered within {ANSWER_TIMEOUT_S} s: "
                                      f"is a worker consuming the '{INFERENCE_QUEUE}' queue?"}, status=503)
    except Exception as exc:  # the task failed on the worker: say why, without a stack trace
        return JsonResponse({"error": f"the model could not answer: {type(exc).__name__}: {exc}"}, status=502)
    finally:
        result.forget()


@login_required
@require_POST
async def classify(request, pk):
    user = await request.auser()
    artifact = await sync_to_async(_model_for_user)(user, pk, "classification")
    texts = _texts(request.body)
    if isinstance(texts, str):
        return JsonResponse({"error": texts, "field": "texts"}, status=400)
    answers = await _ask_worker("workers.classify_texts", [str(artifact.absolute_path), texts])
    if isinstance(answers, JsonResponse):
        return answers
    return JsonResponse({"model": artifact.pk, "labels": artifact.metadata.get("labels", []),
                         "results": [{"text": t, **answer} for t, answer in zip(texts, answers, strict=True)]})


@login_required
@require_POST
async def score(request, pk):
    """The rewards a reward model gives one or more responses to a prompt."""
    user = await request.auser()
    artifact = await sync_to_async(_model_for_user)(user, pk, "reward")
    try:
        prompt, responses = _scoring(request.body)
    except ConfigError as e:
        return JsonResponse({"error": str(e), "field": e.field}, status=400)
    rewards = await _ask_worker("workers.score_texts", [str(artifact.absolute_path), [prompt] * len(responses), responses])
    if isinstance(rewards, JsonResponse):
        return rewards
    return JsonResponse({"model": artifact.pk, "prompt": prompt,
                         "results": [{"response": r, "reward": x} for r, x in zip(responses, rewards, strict=True)]})
