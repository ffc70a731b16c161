"""Publishing run events to the run's Channels group (delivery is at most once; the DB replays)."""

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from lab.runs.models import Run


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
        "is_active": run.is_active,
        "last_seq": run.last_seq,
    }


def publish(run: Run, events: list[dict]) -> None:
    """One message per batch: a few messages a second, not one per step (channels_redis drops floods)."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(run.group_name, {"type": "run.events", "events": events, "run": run_state(run)})
