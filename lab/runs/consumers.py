"""The run websocket: authenticate, check access, join the run's group, replay what was missed, go live."""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from lab.access import get_run_for_user
from lab.runs.streaming import run_state

REPLAY_CHUNK = 500


class RunConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        try:
            self.run = await database_sync_to_async(get_run_for_user)(user, self.scope["url_route"]["kwargs"]["run_id"])
        except Http404:
            await self.close(code=4404)
            return
        try:
            after = int(parse_qs(self.scope.get("query_string", b"").decode()).get("after", ["0"])[0])
        except ValueError:
            after = 0
        # Join first, then replay: an event published in between arrives twice (the client drops
        # duplicates by seq) instead of never.
        await self.channel_layer.group_add(self.run.group_name, self.channel_name)
        await self.accept()
        async for chunk, state in self._replay(after):
            await self.send_json({"events": chunk, "run": state, "replay": True})

    async def _replay(self, after: int):
        while True:
            chunk, state = await database_sync_to_async(self._load)(after)
            yield chunk, state
            if len(chunk) < REPLAY_CHUNK:
                return
            after = chunk[-1]["seq"]

    def _load(self, after: int):
        self.run.refresh_from_db()
        events = [e.as_message() for e in self.run.events.filter(seq__gt=after)[:REPLAY_CHUNK]]
        return events, run_state(self.run)

    async def disconnect(self, code):
        if hasattr(self, "run"):
            await self.channel_layer.group_discard(self.run.group_name, self.channel_name)

    async def run_events(self, message):
        await self.send_json({"events": message["events"], "run": message["run"]})
