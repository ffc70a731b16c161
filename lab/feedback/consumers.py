"""A campaign's two websockets.

CampaignConsumer, the dashboard's: authenticate, check access, join the campaign's group, send the
statistics now and again whenever votes or items change (at most every REFRESH_SECONDS).

AnnotatorConsumer, the annotator page's line to its queue (ws/campaigns/<id>/annotate/). On
connect it sends the queue, {"queue": [...], "done": n}. The page sends {"action": "vote" | "skip" |
"next", "ref": any, ...the action's fields, as the REST API takes them}; each message gets one reply,
in order: {"reply": action, "ref": ref, "status": HTTP status, ...the body the REST API returns}.
While the annotator's queue is empty (and only then: every vote is announced to the campaign's
group), a change to the campaign (items added, an item skipped) sends the queue again unasked, so
new work appears without a reload; so does an abandoned item's place coming free (looked for every
WAITING_LOOK_SECONDS).

A judgement over the websocket skips what every HTTP request pays (Django's request handling, its
middleware, authentication): the next item arrives in about half the time (bench/feedback.py).
Access is still checked on every message, so an annotator taken off the campaign stops at once.
A message that is not a JSON object with a known action (not JSON, nested too deep, binary, an
array, a vote with a missing or wrong field or an id past 64 bits) is answered with status 400 and
a detail, and the socket stays open (lab/websockets.py).
"""

import asyncio
import json
import time

from channels.db import database_sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404

from lab.feedback import judging
from lab.feedback.access import get_campaign_for_annotator, get_campaign_for_user
from lab.feedback.dashboard import campaign_stats
from lab.feedback.streaming import group_name
from lab.websockets import LimitedJsonConsumer

REFRESH_SECONDS = 0.5
WAITING_LOOK_SECONDS = 30.0


class CampaignConsumer(LimitedJsonConsumer):
    async def connect(self):
        try:
            self.campaign = await database_sync_to_async(get_campaign_for_user)(
                self.scope.get("user"), self.scope["url_route"]["kwargs"]["campaign_id"])
        except Http404:
            await self.close(code=4404)
            return
        self.group = group_name(self.campaign.pk)
        self.refresh: asyncio.Task | None = None
        self.dirty = False
        self.sent_at = 0.0
        # Join first, then send: a change in between triggers a second send instead of none.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._send_stats()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "refresh", None):
            self.refresh.cancel()

    async def campaign_changed(self, message):
        self.dirty = True
        if self.refresh is None or self.refresh.done():
            self.refresh = asyncio.create_task(self._refresh_while_dirty())

    async def _refresh_while_dirty(self):
        # A change announced while the statistics are being read sets `dirty` again: one more round.
        while self.dirty:
            await asyncio.sleep(max(0.0, self.sent_at + REFRESH_SECONDS - time.monotonic()))
            self.dirty = False
            await self._send_stats()

    async def _send_stats(self):
        self.sent_at = time.monotonic()
        stats = await database_sync_to_async(self._stats)()
        await self.send_json({"stats": stats})

    def _stats(self) -> dict:
        self.campaign.refresh_from_db()
        return campaign_stats(self.campaign)

    async def receive_json(self, content, **kwargs):
        await self.refuse("the dashboard's socket only sends; it takes no messages")


class AnnotatorConsumer(LimitedJsonConsumer):
    actions = {"vote": judging.vote, "skip": judging.skip, "next": judging.next_items}

    async def connect(self):
        self.user = self.scope.get("user")
        self.campaign_id = self.scope["url_route"]["kwargs"]["campaign_id"]
        try:
            campaign = await database_sync_to_async(get_campaign_for_annotator)(self.user, self.campaign_id)
        except Http404:
            await self.close(code=4404)
            return
        self.group = group_name(campaign.pk)
        self.waiting = False
        self.look: asyncio.Task | None = None
        self.look_at = 0.0
        await self.accept()
        await self._act("next", {})

    async def disconnect(self, code):
        if getattr(self, "waiting", False):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "look", None):
            self.look.cancel()

    @classmethod
    async def encode_json(cls, content):
        return json.dumps(content, cls=DjangoJSONEncoder)  # the queue's expiry times, as the REST API writes them

    async def refuse(self, detail: str, **fields):
        await super().refuse(detail, **{"reply": None, "ref": None, **fields})

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.refuse(f"send a JSON object with an action ({', '.join(self.actions)}), not {_json_type(content)}")
            return
        action, ref = content.get("action"), content.get("ref")
        if not isinstance(action, str) or action not in self.actions:
            await self.refuse(f"send JSON with an action: {', '.join(self.actions)}", ref=ref)
            return
        await self._act(action, content, ref=ref)

    async def _act(self, action: str, data: dict, ref=None):
        # Not thread-sensitive: annotators' judgements run side by side, each on its own database
        # connection, instead of queueing for the one thread that sync code shares by default.
        reply = await database_sync_to_async(self._reply, thread_sensitive=False)(action, data)
        await self.send_json({"reply": action, "ref": ref, "status": reply.status, **reply.body})
        if reply is judging.NOT_FOUND:
            await self.close(code=4404)
        elif "queue" in reply.body:
            await self._wait_for_items(not reply.body["queue"])

    def _reply(self, action: str, data: dict) -> judging.Reply:
        try:  # every message: an annotator taken off the campaign or the team stops here
            campaign = get_campaign_for_annotator(self.user, self.campaign_id)
        except Http404:
            return judging.NOT_FOUND
        return self.actions[action](campaign, self.user, data)

    async def _wait_for_items(self, waiting: bool):
        """Hear of the campaign's changes only while there is nothing to judge: every vote is
        announced to the group, which the annotators at work need not hear. A place given back by
        an abandoned item is no event: while waiting, look again every WAITING_LOOK_SECONDS."""
        if waiting != self.waiting:
            self.waiting = waiting
            change = self.channel_layer.group_add if waiting else self.channel_layer.group_discard
            await change(self.group, self.channel_name)
        if waiting:
            self._look_again(WAITING_LOOK_SECONDS)

    async def campaign_changed(self, message):
        if self.waiting:
            self._look_again(REFRESH_SECONDS)  # a burst of changes: one look

    def _look_again(self, after: float):
        """Ask for the queue in `after` seconds, unless a look comes sooner already."""
        at = time.monotonic() + after
        if self.look is not None and not self.look.done():
            if self.look_at <= at:
                return
            self.look.cancel()
        self.look_at = at
        self.look = asyncio.create_task(self._look(after))

    async def _look(self, after: float):
        await asyncio.sleep(after)
        self.look = None
        if self.waiting:
            await self._act("next", {})


def _json_type(value) -> str:
    return {list: "an array", str: "a string", bool: "true or false", type(None): "null"}.get(type(value), "a number")
