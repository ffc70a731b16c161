"""The base of the lab's websocket consumers: what a client sends is read as JSON with the lab's
depth limit (training.json_limits), and a message that cannot be read is answered, not fatal.

Channels' own JSON consumer parses with json.loads (50,000 nested brackets: RecursionError) and
raises on a binary frame; either closes the socket with 1011 as a server error. Here a message that
is not JSON, too deep, binary or holds NaN/Infinity gets {"status": 400, "detail": why} and the
socket stays open.
"""

import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from rest_framework.utils.json import strict_constant

from training.json_limits import loads


class LimitedJsonConsumer(AsyncJsonWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.refuse("send JSON as a text message, not binary")
            return
        try:
            content = loads(text_data, parse_constant=strict_constant)
        except json.JSONDecodeError as e:  # TooDeep is one
            await self.refuse(f"not JSON: {e}")
            return
        except ValueError as e:  # NaN or Infinity; an integer of more than 4,300 digits
            await self.refuse(f"not JSON the lab reads: {str(e).split(':')[0]}")
            return
        await self.receive_json(content, **kwargs)

    async def refuse(self, detail: str, **fields):
        """Answer a message the consumer cannot act on."""
        await self.send_json({**fields, "status": 400, "detail": detail})

    async def groups_rejoined(self, message):
        """The channel layer joined this socket's groups again after a Redis outage (lab/channel_layer.py);
        what they carried meanwhile never came. A consumer that streams a log catches up here."""
