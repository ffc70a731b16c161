"""Telling a campaign's dashboards that something changed. The message carries no numbers: each
dashboard's consumer recomputes the statistics from the database, at most a few times a second, so
a burst of votes costs one recomputation, not one per vote."""

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def group_name(campaign_id: int) -> str:
    return f"feedback.{campaign_id}"


def announce_change(campaign_id: int) -> None:
    """Called after commit; a vote is stored whether or not Redis hears of it (dashboards also
    recompute on connect)."""
    layer, group, message = get_channel_layer(), group_name(campaign_id), {"type": "campaign.changed"}
    try:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # the usual case: a sync view or worker thread
            loop = None
        if loop is None:
            async_to_sync(layer.group_send)(group, message)
        else:  # on an event loop's own thread async_to_sync refuses: send from the loop
            loop.create_task(layer.group_send(group, message))
    except Exception:  # noqa: BLE001 - the vote is committed; a missed refresh is not worth a 500
        log.exception("could not announce a change of campaign %s", campaign_id)
