"""The campaign dashboard's websocket: authenticate, check access, join the campaign's group, send
the statistics now and again whenever votes or items change (at most every REFRESH_SECONDS)."""

import asyncio
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from lab.feedback.access import get_campaign_for_user
from lab.feedback.dashboard import campaign_stats
from lab.feedback.streaming import group_name

REFRESH_SECONDS = 0.5


class CampaignConsumer(AsyncJsonWebsocketConsumer):
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
