"""Publishing run events to the run's Channels group.

Delivery is at most once and best effort: the database holds every event and the websocket replays
from it, so a channel layer that is down (Redis restarting) costs live updates, never a run.
"""

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from lab.runs.models import Run

log = logging.getLogger(__name__)

# Events held back while the channel layer is down, sent with the next batch that gets through. Past
# this many the oldest are dropped: the page sees a gap in seq and replays it from the database.
MAX_HELD_EVENTS = 500
# While the layer is down, try again at most this often (a publish that fails fast costs nothing,
# one that waits for a connect timeout would stall the relay).
RETRY_SECONDS = 1.0
# A run that ended while the layer was down waits this long for it, so that a page left open gets
# the end live (it has nothing else to wake it). The broker shares that Redis: the worker could take
# no new task meanwhile anyway.
DRAIN_SECONDS = 30.0


def run_state(run: Run) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "step": run.step,
        "total_steps": run.total_steps,
        "latest_metrics": run.latest_metrics,
        "attempt": run.attempt,
        "worker": run.worker,
        "error": run.error,
        "error_field": run.error_field,
        "can_resume": run.can_resume,
        "can_pause": run.can_pause,
        "can_cancel": run.can_cancel,
        "is_active": run.is_active,
        "last_seq": run.last_seq,
    }


def publish(run: Run, events: list[dict]) -> bool:
    """One message per batch: a few messages a second, not one per step (channels_redis drops floods).

    False (logged) when the channel layer could not take it; never raises for that.
    """
    layer = get_channel_layer()
    try:
        async_to_sync(layer.group_send)(run.group_name, {"type": "run.events", "events": events, "run": run_state(run)})
    except (RedisError, OSError) as exc:
        log.warning("run %s: %d events not published live (the page replays them from the database): %s",
                    run.pk, len(events), exc)
        return False
    return True


class RunPublisher:
    """Publishes a run's batches in order; what fails is held and sent again with the next batch."""

    def __init__(self, run: Run):
        self.run = run
        self.held: list[dict] = []
        self.retry_at = 0.0

    def __call__(self, events: list[dict], last: bool = False) -> None:
        """`last`: the run's final batch, tried even within RETRY_SECONDS of a failure."""
        self.held = (self.held + events)[-MAX_HELD_EVENTS:]
        if time.monotonic() < self.retry_at and not last:
            return
        if publish(self.run, self.held):
            self.held = []
        else:
            self.retry_at = time.monotonic() + RETRY_SECONDS

    def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Keep trying what is held, for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.held and time.monotonic() < deadline:
            time.sleep(RETRY_SECONDS)
            self([], last=True)
