"""Publishing run events when Redis cannot be reached: nothing raises, what failed is held and sent
with the next batch that gets through, in order."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from lab.runs.models import Run
from lab.runs.streaming import RunPublisher, publish
from tests.conftest import _free_port


@pytest.fixture
def run(cast):
    return Run.objects.create(team=cast.team, stage="pretrain", config={})


def _unreachable(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "lab.channel_layer.ResilientRedisChannelLayer", "CONFIG": {
        "hosts": [{"address": f"redis://127.0.0.1:{_free_port()}/0", "socket_connect_timeout": 1}]}}}


def test_a_publish_that_cannot_reach_redis_says_so_and_raises_nothing(settings, run):
    _unreachable(settings)
    assert publish(run, [{"seq": 1, "type": "log", "message": "hello"}]) is False


def test_held_events_go_with_the_next_batch_once_redis_answers(settings, run, monkeypatch):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(run.group_name, channel)
    publisher = RunPublisher(run)
    monkeypatch.setattr("lab.runs.streaming.publish", lambda run, events: False)
    publisher([{"seq": 1, "type": "log"}])
    publisher([{"seq": 2, "type": "log"}], last=True)
    assert [e["seq"] for e in publisher.held] == [1, 2]
    monkeypatch.undo()

    publisher([{"seq": 3, "type": "log"}], last=True)

    message = async_to_sync(layer.receive)(channel)
    assert [e["seq"] for e in message["events"]] == [1, 2, 3] and publisher.held == []
