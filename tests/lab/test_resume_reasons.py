"""Resume refused says why: a queued, running, stopping or finished run is not "without a
checkpoint"."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from rest_framework.authtoken.models import Token

from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Run, Status

pytestmark = pytest.mark.django_db


@pytest.fixture
def pretrain_cell(cast):
    notebook = Notebook.objects.create(team=cast.team, title="nb", created_by=cast.alice)
    return Cell.objects.create(notebook=notebook, kind=Cell.Kind.PRETRAIN, config={})


def _run(cell, status, checkpoint="/data/runs/1/checkpoint-40") -> Run:
    return Run.objects.create(team=cell.notebook.team, cell=cell, stage="pretrain", config={},
                              status=status, last_checkpoint=checkpoint, step=40)


QUEUED = "is queued: it starts from its checkpoint checkpoint-40 when a worker takes it"


@pytest.mark.parametrize("status, reason", [
    (Status.QUEUED, QUEUED),
    (Status.RUNNING, "is running: there is nothing to resume"),
    (Status.CANCELLING, "is still stopping: resume it once it is cancelled"),
    (Status.SUCCEEDED, "has finished: there is nothing left to resume"),
])
def test_the_api_says_why_a_run_with_a_checkpoint_cannot_resume(cast, pretrain_cell, status,
                                                                  reason):
    run = _run(pretrain_cell, status)
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast.alice).key}")

    response = api.post(f"/api/runs/{run.pk}/resume/")

    assert response.status_code == 400
    assert response.json() == {"status": [f"run {run.pk} {reason}"]}
    run.refresh_from_db()
    assert run.status == status and run.events.count() == 0


def test_a_failed_run_without_a_checkpoint_says_so_on_the_page(cast, pretrain_cell):
    run = _run(pretrain_cell, Status.FAILED, checkpoint="")
    page = Client()
    page.force_login(cast.alice)

    response = page.post(f"/runs/{run.pk}/resume/")

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"status: run {run.pk} is failed and has no checkpoint to resume from: run its cell again"]
    run.refresh_from_db()
    assert run.status == Status.FAILED


def test_a_queued_run_explains_itself_on_the_page(cast, pretrain_cell):
    run = _run(pretrain_cell, Status.QUEUED, checkpoint="")
    page = Client()
    page.force_login(cast.alice)

    response = page.post(f"/runs/{run.pk}/resume/", follow=True)

    reason = f"run {run.pk} is queued: it starts from the start when a worker takes it"
    assert reason in response.content.decode()
