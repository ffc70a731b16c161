"""ws/fleet/: the workers page's live view, for staff only (others: closed with 4404). It sends the
fleet's snapshot now and every LAB_FLEET_REFRESH_SECONDS; the client sends nothing."""

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings

from lab.fleet.snapshot import fleet_snapshot
from lab.websockets import LimitedJsonConsumer


class FleetConsumer(LimitedJsonConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff):
            await self.close(code=4404)
            return
        await self.accept()
        self.ticker = asyncio.create_task(self._tick())

    async def _tick(self):
        while True:
            await self.send_json({"type": "fleet", **await database_sync_to_async(fleet_snapshot)()})
            await asyncio.sleep(settings.LAB_FLEET_REFRESH_SECONDS)

    async def disconnect(self, code):
        if ticker := getattr(self, "ticker", None):
            ticker.cancel()

    async def receive_json(self, content, **kwargs):
        await self.refuse("this socket only sends")
