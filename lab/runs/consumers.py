"""The run websocket: authenticate, check access, join the run's group, replay what was missed, go live.

ws/runs/<id>/?after=<seq> replays the events after seq (0, the default: all of them). An `after`
that is not a whole number from 0 to 2^63 - 1 is answered {"status": 400, "detail": why} and the
socket closes with 4400. The socket only sends: a message from the client is answered with a 400
and nothing else happens (lab/websockets.py).
"""

from channels.db import database_sync_to_async
from django.http import Http404, QueryDict

from lab import params
from lab.access import get_run_for_user
from lab.runs.streaming import run_state
from lab.websockets import LimitedJsonConsumer
from training.config import ConfigError

REPLAY_CHUNK = 500


def parse_after(query_string: bytes) -> int:
    """The `after` of a query string (0 when absent), read as the events page and the API read it;
    ConfigError("after") when it is not a seq."""
    return params.integer(QueryDict(query_string), "after") or 0


class RunConsumer(LimitedJsonConsumer):
    async def connect(self):
        user = self.scope.get("user")
        try:
            self.run = await database_sync_to_async(get_run_for_user)(user, self.scope["url_route"]["kwargs"]["run_id"])
        except Http404:
            await self.close(code=4404)
            return
        try:
            after = parse_after(self.scope.get("query_string", b""))
        except ConfigError as e:
            await self.accept()
            await self.refuse(f"{e.field}: {e.message}")
            await self.close(code=4400)
            return
        # Join first, then replay: an event published in between arrives twice (the client drops
        # duplicates by seq) instead of never.
        await self.channel_layer.group_add(self.run.group_name, self.channel_name)
        await self.accept()
        self.sent_seq = after
        async for chunk, state in self._replay(after):
            await self._send(chunk, state, replay=True)

    async def _replay(self, after: int, before: int | None = None):
        while True:
            chunk, state = await database_sync_to_async(self._load)(after, before)
            yield chunk, state
            if len(chunk) < REPLAY_CHUNK:
                return
            after = chunk[-1]["seq"]

    def _load(self, after: int, before: int | None = None):
        self.run.refresh_from_db()
        events = self.run.events.filter(seq__gt=after)
        if before is not None:
            events = events.filter(seq__lt=before)
        return [e.as_message() for e in events[:REPLAY_CHUNK]], run_state(self.run)

    async def _send(self, events: list[dict], state: dict, replay: bool = False):
        message = {"events": events, "run": state} | ({"replay": True} if replay else {})
        await self.send_json(message)
        if events:
            self.sent_seq = max(self.sent_seq, events[-1]["seq"])

    async def disconnect(self, code):
        if hasattr(self, "run"):
            await self.channel_layer.group_discard(self.run.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        await self.refuse("the run's socket only sends; it takes no messages")

    async def groups_rejoined(self, message):
        """Back in the run's group after a Redis outage: what was published meanwhile, from the database."""
        async for chunk, state in self._replay(self.sent_seq):
            await self._send(chunk, state)

    async def run_events(self, message):
        """Live events. What the group did not bring (published while this socket was out of it, as
        during a Redis outage) is read from the database first: the page never sees a gap."""
        events = [e for e in message["events"] if e["seq"] > self.sent_seq]
        if events and events[0]["seq"] > self.sent_seq + 1:
            async for chunk, state in self._replay(self.sent_seq, before=events[0]["seq"]):
                await self._send(chunk, state)
        await self._send(events, message["run"])
