"""The playground's websocket (ws/playground/): a person's prompts go to an inference worker, the
answers' tokens come back as the worker samples them.

The page sends `{"action": "generate", "ref": r, "model": artifact id, "request": {…}}` (the request
as training/generation_request.py takes it) and `{"action": "stop", "ref": r}`. Each item of the answer
comes back as `{"ref": r, "item": {…}}`: its tokens, then its `done` (lab/hub/generation.py reads them
from the worker). `ref` names an answer on the page (a short string or a number); two answers may
stream at once, side by side. A request that cannot be served gets `{"ref": r, "status": 4xx or 503,
"detail": why, "field": where}` and the socket stays open (lab/websockets.py); so does any message
that is not JSON, too deep or binary.

Access is checked for every answer: only the checkpoints of the user's teams (another team's is a 404,
as everywhere). The worker is told to stop when the page says so and when the socket closes.
"""

import asyncio

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.http import Http404
from redis.exceptions import RedisError

from lab import params
from lab.hub import generation
from lab.hub.playground import get_playground_model
from lab.websockets import LimitedJsonConsumer
from training.config import ConfigError

MAX_ANSWERS_AT_ONCE = 2
"""Side by side: two answers stream at once; more would take more than one person's share of workers."""
MAX_REF_CHARS = 40
STEP_TIMEOUT_S = 120.0
"""How long an answer waits for its next item (the first one includes a model's load) before the page is told."""


class PlaygroundConsumer(LimitedJsonConsumer):
    async def connect(self):
        self.user = self.scope.get("user")
        self.answers: dict[str | int, tuple[str, asyncio.Task]] = {}
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4403)
            return
        await self.accept()

    async def refuse(self, detail: str, **fields):
        await super().refuse(detail, **{"ref": None, **fields})

    async def disconnect(self, code):
        for request_id, task in list(getattr(self, "answers", {}).values()):
            task.cancel()
            await sync_to_async(generation.cancel)(request_id)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.refuse("send a JSON object with an action: generate, stop")
            return
        ref = content.get("ref")
        if not (isinstance(ref, str) and 0 < len(ref) <= MAX_REF_CHARS) and not _is_id(ref):
            await self.refuse(f"name the answer with a string of 1 to {MAX_REF_CHARS} characters or a number", field="ref")
            return
        action = content.get("action")
        if action == "generate":
            await self._generate(ref, content)
        elif action == "stop":
            await self._stop(ref)
        else:
            await self.refuse("send JSON with an action: generate, stop", ref=ref)

    async def _generate(self, ref, content: dict):
        if ref in self.answers:
            await self.refuse("this answer is still streaming: stop it first, or use another ref", ref=ref, field="ref")
            return
        if len(self.answers) >= MAX_ANSWERS_AT_ONCE:
            await self.refuse(f"at most {MAX_ANSWERS_AT_ONCE} answers stream at once", ref=ref, field="ref")
            return
        try:
            model = params.integer(content, "model", min_value=1, required=True)
            artifact = await database_sync_to_async(get_playground_model)(self.user, model)
            request = content.get("request")
            if not isinstance(request, dict):
                raise ConfigError("request", "must be a JSON object of the generation's settings")
            request_id = await sync_to_async(generation.start_generation)(artifact, request)
        except ConfigError as exc:
            await self.refuse(exc.message, ref=ref, field=exc.field)
            return
        except Http404:
            await self.send_json({"ref": ref, "status": 404, "field": "model", "detail": "no such model of your team"})
            return
        except generation.GenerationUnavailable as exc:
            await self.send_json({"ref": ref, "status": 503, "detail": str(exc)})
            return
        except generation.TooManyRequests as exc:
            await self.send_json({"ref": ref, "status": 429, "detail": str(exc)})
            return
        await self.send_json({"ref": ref, "started": True, "model": artifact.pk})
        self.answers[ref] = (request_id, asyncio.create_task(self._forward(ref, request_id)))

    async def _forward(self, ref, request_id: str):
        try:
            async for item in generation.steps(request_id, STEP_TIMEOUT_S):
                await self.send_json({"ref": ref, "item": item})
        except (RedisError, OSError) as exc:  # Redis went away mid-answer: the page hears it, not silence
            await self.send_json({"ref": ref, "item": {"type": "error", "field": None,
                                                       "message": f"the answer's stream broke: {type(exc).__name__}"}})
        finally:
            self.answers.pop(ref, None)

    async def _stop(self, ref):
        if ref not in self.answers:
            await self.refuse("no answer of this ref is streaming", ref=ref, field="ref")
            return
        # The worker ends the answer as `cancelled`; its `done` item still comes through _forward.
        await sync_to_async(generation.cancel)(self.answers[ref][0])


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= params.ID_MAX

