"""The Redis channel layer, made to ride out a Redis outage instead of dropping every websocket.

channels_redis raises from `receive()` when Redis goes away, which ends the consumer and closes its
websocket (1011); pages then reconnect with a growing backoff and see nothing live for up to a minute
after a short blip. Here a consumer keeps its socket: its receive waits for Redis to come back, then
joins its groups again (a Redis restarted with nothing on disk has forgotten them) and goes on. A
websocket that connects during the outage is accepted too (its group is joined once Redis is back),
so a page still gets its replay from the database. Once its groups are joined again, a consumer gets
a `groups.rejoined` message: what was published meanwhile missed it, and it catches up.
"""

import asyncio
import collections
import logging

from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# How often a receive that met an outage tries Redis again.
RETRY_SECONDS = 0.5


class ResilientRedisChannelLayer(RedisChannelLayer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.joined: dict[str, set[str]] = collections.defaultdict(set)  # channel -> its groups
        self.unjoined: dict[str, set[str]] = collections.defaultdict(set)  # ...not (yet) in Redis

    async def group_add(self, group, channel):
        self.joined[channel].add(group)
        try:
            await super().group_add(group, channel)
        except (RedisError, OSError) as exc:
            log.warning("channel layer: Redis unreachable (%s); %s joins %s when it is back", exc, channel, group)
            self.unjoined[channel].add(group)

    async def group_discard(self, group, channel):
        for groups in (self.joined, self.unjoined):
            groups[channel].discard(group)
            if not groups[channel]:
                del groups[channel]
        try:
            await super().group_discard(group, channel)
        except (RedisError, OSError):
            pass  # its entry expires with the group (group_expiry), and nothing is sent to a gone channel

    async def receive(self, channel):
        while True:
            try:
                if self.unjoined.get(channel):
                    await self._join_again(channel)
                    # What the groups carried meanwhile never reached this channel: its consumer
                    # is told, and catches up from the database (RunConsumer.groups_rejoined).
                    return {"type": "groups.rejoined"}
                return await super().receive(channel)
            except (RedisError, OSError) as exc:
                if not self.unjoined.get(channel):
                    log.warning("channel layer: Redis unreachable (%s); %s waits for it", exc, channel)
                if self.joined.get(channel):
                    self.unjoined[channel] |= self.joined[channel]
                await asyncio.sleep(RETRY_SECONDS)

    async def _join_again(self, channel):
        for group in list(self.unjoined[channel]):
            await super().group_add(group, channel)
            self.unjoined[channel].discard(group)
        self.unjoined.pop(channel, None)
        log.info("channel layer: Redis is back; %s joined its groups again", channel)
