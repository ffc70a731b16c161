"""A cancel decides from the row, not from the caller's copy: a run read while queued and claimed by a
worker before the cancel lands is stopped by its worker, and no event is written into the sequence
its training process numbers (the worker's next batch would collide with it, crash the task, and the
run would be resumed a second time once its lease ran out)."""

import pytest

from lab.runs.actions import cancel_run
from lab.runs.models import Run, Status


@pytest.mark.django_db(transaction=True)
def test_a_cancel_of_a_run_claimed_since_it_was_read_leaves_its_events_to_the_worker(cast):
    run = Run.objects.create(team=cast.team, stage="pretrain", queue="gpu", config={}, created_by=cast.alice)
    Run.objects.filter(pk=run.pk).update(admitted_at=run.created_at)
    read_while_queued = Run.objects.get(pk=run.pk)
    assert run.claim("gpu1@box", 30)
    Run.objects.filter(pk=run.pk).update(last_seq=31)  # what the training process has written so far

    assert cancel_run(read_while_queued)
    run.refresh_from_db()
    assert (run.status, run.last_seq, run.events.count()) == (Status.CANCELLING, 31, 0)


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_is_cancelled_at_once_and_says_so(cast):
    run = Run.objects.create(team=cast.team, stage="pretrain", queue="gpu", config={}, created_by=cast.alice)
    assert cancel_run(run)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    assert [e.data["message"] for e in run.events.all()] == ["cancelled before it started"]
