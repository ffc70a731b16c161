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

MAX_TEXTS = 16
MAX_TEXT_CHARS = 5000
ANSWER_TIMEOUT_S = 60


def _classifier_for_user(user, pk) -> Artifact:
    artifact = get_artifact_for_user(user, pk)
    if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.metadata.get("task") != "classification":
        raise Http404("not a classification model")
    if not artifact.absolute_path.is_dir():
        raise Http404("the files of this model are gone")
    return artifact


def _texts(body: bytes) -> list[str] | str:
    """The texts of a request `{"texts": [...]}` or `{"text": "..."}`, or what is wrong with it."""
    try:
        data = json_limits.loads(body or b"{}")
    except ValueError:
        return "the body must be JSON: {\"texts\": [\"…\"]}"
    texts = data.get("texts", [data["text"]] if "text" in data else None) if isinstance(data, dict) else None
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        return "texts: give one or more non-empty strings"
    if len(texts) > MAX_TEXTS:
        return f"texts: at most {MAX_TEXTS} at a time"
    return [t[:MAX_TEXT_CHARS] for t in texts]


@login_required
@require_POST
async def classify(request, pk):
    user = await request.auser()
    artifact = await sync_to_async(_classifier_for_user)(user, pk)
    texts = _texts(request.body)
    if isinstance(texts, str):
        return JsonResponse({"error": texts, "field": "texts"}, status=400)
    try:
        result = client.send_task("workers.classify_texts", args=[str(artifact.absolute_path), texts], queue=INFERENCE_QUEUE)
    except (OperationalError, RedisError, OSError):
        return JsonResponse({"error": "the task queue is unreachable: try again in a minute"}, status=503)
    try:
        answers = await asyncio.to_thread(result.get, timeout=ANSWER_TIMEOUT_S)
    except CeleryTimeout:
        return JsonResponse({"error": f"no inference worker answered within {ANSWER_TIMEOUT_S} s: "
                                      f"is a worker consuming the '{INFERENCE_QUEUE}' queue?"}, status=503)
    except Exception as exc:  # the task failed on the worker: say why, without a stack trace
        return JsonResponse({"error": f"the model could not answer: {type(exc).__name__}: {exc}"}, status=502)
    finally:
        result.forget()
    return JsonResponse({"model": artifact.pk, "labels": artifact.metadata.get("labels", []),
                         "results": [{"text": t, **answer} for t, answer in zip(texts, answers, strict=True)]})
