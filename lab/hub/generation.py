"""A model answering while a person (or a program) reads along: the web side of streaming generation.

`start_generation` sends the request to the `inference` queue; a worker (workers.generate_stream) runs
training/serving.py's `stream` and `relay`s each item into the Redis stream `<prefix>:gen:<request_id>`,
which expires `STREAM_TTL_S` after its last item. `steps` reads that stream from the start, at the
reader's own pace: a slow reader never holds the worker, which writes at its own. `cancel` sets the key
`<prefix>:gen:<request_id>:cancel`, which the worker reads after each token: it ends the answer
(`finish_reason: cancelled`) and is free for the next request. A reader that goes away before the end
cancels the same way.

Items are training/serving.py's (`token`, then `done`), or one `{"type": "error", "message", "field"}`
in place of `done` when the request or the model cannot be served (`field` names what to change, or is
null) or when no worker answered in time (`code: "timeout"`).

Requests are queued fairly between teams: a team has at most LAB_INFERENCE_REQUESTS_PER_TEAM answers
queued or streaming at once (a Redis sorted set per team, `<prefix>:gen:team:<id>`, each entry expiring
with its stream); one more is refused (`TooManyRequests`) rather than queued, so a team that sends a
flood waits for its own answers, and another team's request never waits behind more than that many of
any team's.

No torch here: the web process imports this module, the worker only its `relay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import queue
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from kombu.exceptions import OperationalError
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from lab.queues import INFERENCE_QUEUE
from lab.runs.models import Artifact
from lab.task_client import client
from training.config_checks import ConfigError
from training.generation_request import GenerationRequest

log = logging.getLogger(__name__)

STREAM_TTL_S = 300
"""A stream (and a cancel flag) is deleted this long after its last write; so is a request no worker took."""
END_TYPES = ("done", "error")
WRITE_EVERY_S = 0.02
"""How often the worker writes what it generated: 50 times a second is smooth to the eye, and spares the
generation the cost of a write per token (a write at each token took a fifth of a small model's speed)."""


class GenerationUnavailable(Exception):
    """The task queue cannot be reached: no request was sent."""


class TooManyRequests(Exception):
    """The team has as many answers queued or streaming as it may: no request was sent."""

    retry_after_s = 1


# Takes a place for a request in its team's set, unless the set (its expired entries dropped) is full.
# KEYS[1]: the team's set; ARGV: now, the entry's expiry, the limit, the request id, the set's lifetime.
_TAKE_A_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


def stream_key(request_id: str) -> str:
    return f"{settings.LAB_REDIS_PREFIX}:gen:{request_id}"


def cancel_key(request_id: str) -> str:
    return f"{stream_key(request_id)}:cancel"


def team_key(request_id: str) -> str:
    """The set of the requesting team's answers (a request id begins with the team's id)."""
    return f"{settings.LAB_REDIS_PREFIX}:gen:team:{request_id.partition('-')[0]}"


def start_generation(artifact: Artifact, request: dict[str, Any]) -> str:
    """Send `request` (a GenerationRequest's fields) for the checkpoint `artifact` (one the caller may
    use: lab/access.py) to an inference worker; its request id. A bad request is a ConfigError naming
    the field, before anything is sent; an unreachable queue is GenerationUnavailable."""
    GenerationRequest.from_dict(request)
    request_id = f"{artifact.team_id}-{uuid.uuid4().hex}"
    limit = settings.LAB_INFERENCE_REQUESTS_PER_TEAM
    try:
        now = time.time()
        if not _redis().eval(_TAKE_A_PLACE, 1, team_key(request_id), now, now + STREAM_TTL_S, limit, request_id, STREAM_TTL_S):
            raise TooManyRequests(f"your team has {limit} answers queued or streaming, as many as a team may: "
                                  "wait for one to end")
        client.send_task("workers.generate_stream", args=[request_id, str(artifact.absolute_path), request],
                         queue=INFERENCE_QUEUE, expires=STREAM_TTL_S)
    except (OperationalError, redis.RedisError, OSError) as exc:
        with contextlib.suppress(redis.RedisError):  # nothing was sent: the team's place is free again
            _redis().zrem(team_key(request_id), request_id)
        raise GenerationUnavailable("the task queue is unreachable: try again in a minute") from exc
    return request_id


async def batches(request_id: str, timeout_s: float = 60) -> AsyncIterator[list[dict[str, Any]]]:
    """The request's items as the worker writes them, up to its `done` (or `error`) item, in lists: what
    had come by each read (a reader that keeps up gets what the worker wrote at once, WRITE_EVERY_S).
    When nothing comes for `timeout_s` (no worker took it, or it stalled), an `error` item with `code:
    "timeout"` ends it and the request is cancelled."""
    connection = _async_redis()
    key, last, finished = stream_key(request_id), "0-0", False
    try:
        while not finished:
            answer = await asyncio.wait_for(connection.xread({key: last}, count=512, block=max(int(timeout_s * 1000), 1)),
                                            timeout_s + 5)  # Redis answers by then, or it is gone
            if not answer:  # not finished: the request is cancelled below
                yield [{"type": "error", "code": "timeout", "field": None,
                        "message": f"no inference worker answered within {timeout_s:g} s: is a worker consuming "
                                   f"the '{INFERENCE_QUEUE}' queue?"}]
                break
            batch = []
            for entry_id, fields in answer[0][1]:
                last = entry_id
                batch.append(json.loads(fields[b"item"]))
                finished = batch[-1]["type"] in END_TYPES
                if finished:
                    break
            yield batch
    finally:
        if not finished:  # the reader left (or timed out): the worker need not go on
            await connection.set(cancel_key(request_id), 1, ex=STREAM_TTL_S)
        with contextlib.suppress(redis.RedisError):  # the entry expires with the stream
            await connection.zrem(team_key(request_id), request_id)  # the team may ask again


async def steps(request_id: str, timeout_s: float = 60) -> AsyncIterator[dict[str, Any]]:
    """`batches`' items one by one."""
    source = batches(request_id, timeout_s)
    try:
        async for batch in source:
            for item in batch:
                yield item
    finally:
        await source.aclose()


def cancel(request_id: str) -> None:
    """Ask the worker to end the answer after its current token."""
    _redis().set(cancel_key(request_id), 1, ex=STREAM_TTL_S)


# Connections are kept between requests: a new one costs round trips before the first token. One
# kept from before a Redis restart fails its first command: that command is tried once more, anew.
@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=10,
                                retry=Retry(NoBackoff(), 1))


_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()


def _async_redis() -> aioredis.Redis:
    """This event loop's client (an asyncio connection serves only the loop that opened it). Its reads
    have no timeout of their own: `batches` bounds each one."""
    loop = asyncio.get_running_loop()
    if loop not in _ASYNC_CLIENTS:
        _ASYNC_CLIENTS[loop] = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=None,
                                                       retry=AsyncRetry(NoBackoff(), 1))
    return _ASYNC_CLIENTS[loop]


def relay(request_id: str, answer: Callable[[Callable[[], bool]], Iterator[dict[str, Any]]]) -> None:
    """The worker's side: the items of `answer(should_stop)` go to the request's stream as they come;
    `should_stop` says whether the request was cancelled. A bad request or model becomes an `error`
    item naming the field; any other failure one that says what.

    A thread of its own writes them, so that generating never waits for Redis: the first item at once,
    then whatever items came in the last WRITE_EVERY_S, in one round trip that reads the cancel flag back
    too (in a transaction, so that a reader takes them in one read), and the last ones as soon as the
    answer ends. Writing each token as it comes would cost the generation a fifth of its speed on a
    small model (the thread's work per write holds the interpreter's lock the generating loop needs)."""
    connection = _redis()
    if connection.exists(cancel_key(request_id)):  # cancelled while queued: the reader is gone, load nothing
        connection.zrem(team_key(request_id), request_id)
        return
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    cancelled, ended = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_out, args=(connection, request_id, outbox, cancelled, ended), daemon=True)
    writer.start()
    try:
        for item in answer(cancelled.is_set):
            outbox.put(item)
    except ConfigError as exc:
        outbox.put({"type": "error", "field": exc.field, "message": exc.message})
    except Exception as exc:
        log.exception("generation %s failed", request_id)
        outbox.put({"type": "error", "field": None, "message": f"the model could not answer: {type(exc).__name__}: {exc}"})
    finally:
        ended.set()
        outbox.put(None)
        writer.join()
        with contextlib.suppress(redis.RedisError):  # an answer nobody reads ends here too
            connection.zrem(team_key(request_id), request_id)


def _write_out(connection: redis.Redis, request_id: str, outbox: queue.SimpleQueue, cancelled: threading.Event,
               ended: threading.Event) -> None:
    """Write the items of `outbox` up to its None (`ended` is set before it comes); set `cancelled` when
    the flag is up, or when Redis fails (nobody could read the answer)."""
    key, flag = stream_key(request_id), cancel_key(request_id)
    flushed_at = 0.0
    while True:
        items = [outbox.get()]
        ended.wait(max(0.0, flushed_at + WRITE_EVERY_S - time.monotonic()))  # the answer's end goes at once
        while items[-1] is not None and not outbox.empty():
            items.append(outbox.get())
        flushed_at = time.monotonic()
        if len(items) > 1 or items[0] is not None:
            pipe = connection.pipeline(transaction=True)  # one read takes all of them
            for item in items:
                if item is not None:
                    pipe.xadd(key, {"item": json.dumps(item, ensure_ascii=False)})
            pipe.expire(key, STREAM_TTL_S)
            pipe.exists(flag)
            try:
                if pipe.execute()[-1]:
                    cancelled.set()
            except redis.RedisError:
                log.exception("generation %s: its stream cannot be written; stopping it", request_id)
                cancelled.set()
        if items[-1] is None:
            return
