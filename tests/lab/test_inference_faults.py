"""The classify box while the task queue is away: a 503 that says so, not a 500."""

import pytest
from django.test import Client
from kombu.exceptions import OperationalError

from lab.runs.models import Artifact
from lab.task_client import client

pytestmark = pytest.mark.django_db


def test_typed_text_meets_a_clear_503_when_the_queue_is_unreachable(cast, data_dir, monkeypatch):
    (data_dir / "classifier").mkdir()
    model = Artifact.objects.create(team=cast.team, kind=Artifact.Kind.CHECKPOINT, name="spam", path="classifier",
                                    sha256="0" * 64, metadata={"task": "classification", "labels": ["ham", "spam"]})

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(client, "send_task", unreachable)
    page = Client()
    page.force_login(cast.alice)
    response = page.post(f"/models/{model.pk}/classify/", {"text": "win cash now"}, content_type="application/json")
    assert response.status_code == 503 and "task queue is unreachable" in response.json()["error"]
