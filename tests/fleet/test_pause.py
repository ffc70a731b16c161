"""Pause (issue 16), without a Celery worker: a queued run pauses at once and its message cannot start
it; a running one is stopped by its supervisor at a checkpoint and becomes paused, unless a cancel
comes too (the cancel wins); a pausing run whose worker died is paused by the reaper, not requeued; a
paused run holds no worker, no quota and no device-hours; who may pause what, and a clear refusal."""

import re
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from lab.fleet import admission
from lab.fleet.models import FleetAction, TeamQuota, Worker
from lab.fleet.usage import device_hours
from lab.runs.actions import cancel_run, pause_run, resume_run
from lab.runs.models import Run, Status
from lab.runs.streaming import run_state
from tests.builders import held
from training.config import ConfigError
from workers.recovery import reap_lost_runs
from workers.supervisor import Supervisor, supervise

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    """The runs handed to the broker, in order (nothing reaches a real broker)."""
    sent = []
    monkeypatch.setattr(admission, "send", lambda run: sent.append(run.pk) or True)
    return sent


def _worker(name):
    return Worker.objects.create(hostname=f"{name}@box", host="box", queues=["gpu"], devices=[{"index": 0}])


def _run(team, user, **fields):
    return Run.objects.create(team=team, stage="pretrain", queue="gpu", config={"output_dir": "/nowhere"}, created_by=user, **fields)


def _running(team, user, worker="gpu1@box", checkpoint=4, started_ago=timedelta(0)):
    """A run its worker holds, at step `checkpoint` with that checkpoint written (0: none yet)."""
    run = _run(
        team,
        user,
        status=Status.RUNNING,
        worker=worker,
        lease_token="tok",
        attempt=1,
        step=checkpoint,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
        started_at=timezone.now() - started_ago,
        last_checkpoint=f"/data/runs/x/checkpoint-{checkpoint}" if checkpoint else "",
    )
    return held(run, timezone.now() - started_ago)


def _messages(run, status):
    return [e.data["message"] for e in run.events.filter(type="status", data__status=status)]


def _stoppable_process():
    """Stands in for the training process: on SIGINT it stops (as training/events.py does), in its own session."""
    script = "import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(0)); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    time.sleep(0.5)  # its handler is installed
    return proc


def test_a_queued_run_pauses_at_once_its_message_cannot_start_it_and_its_worker_goes_to_the_next(cast, sent):
    _worker("gpu1")
    first, second = _run(cast.team, cast.alice), _run(cast.team, cast.alice)
    assert admission.admit() == [first.pk]  # the one worker is planned for the first

    assert pause_run(first, cast.alice)
    first.refresh_from_db()
    assert first.status == Status.PAUSED and first.paused_by == cast.alice and first.finished_at is not None
    assert _messages(first, Status.PAUSED) == ["paused by alice before its first checkpoint: it resumes from the start"]
    assert supervise(first.pk, "gpu1@box") == "not claimed (status paused)"  # its message, delivered late
    assert admission.admit() == [second.pk]
    assert first.can_resume and not first.is_active

    assert resume_run(first, cast.alice)
    first.refresh_from_db()
    assert first.status == Status.QUEUED and first.admitted_at is None  # back through admission
    assert supervise(first.pk, "gpu1@box") == "not claimed (status queued)"  # the message from before it paused
    assert _messages(first, Status.QUEUED)[-2:] == [
        "resuming from the start (resumed by alice)",
        "waiting for a free worker of 'gpu' (all are busy)",
    ]


def test_a_running_run_stops_at_a_checkpoint_and_is_paused_with_its_lease_let_go(cast):
    run = _running(cast.team, cast.alice)
    proc = _stoppable_process()
    supervisor = Supervisor(run, "tok")

    assert pause_run(run, cast.carol) and run.status == Status.PAUSING and run.is_active
    supervisor.obey_stop(proc)
    assert proc.wait(timeout=10) == 0  # it was asked to stop, and stopped
    assert supervisor.conclude(proc.returncode) == "paused: the worker is free"

    run.refresh_from_db()
    assert (run.status, run.lease_token, run.lease_expires_at) == (Status.PAUSED, "", None)
    assert run.last_checkpoint.endswith("checkpoint-4") and run.can_resume
    assert _messages(run, Status.PAUSED) == ["paused at checkpoint-4 (step 4) by carol"]
    with pytest.raises(ConfigError, match="already paused"):
        pause_run(run, cast.alice)


def test_a_cancel_during_a_pause_wins(cast):
    run = _running(cast.team, cast.alice)
    proc = _stoppable_process()
    supervisor = Supervisor(run, "tok")

    pause_run(run, cast.alice)
    supervisor.obey_stop(proc)
    assert cancel_run(run) and run.status == Status.CANCELLING
    supervisor.obey_stop(proc)
    assert supervisor.stop_reason == "cancel"
    proc.wait(timeout=10)
    assert supervisor.conclude(proc.returncode) == Status.CANCELLED
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and not run.events.filter(data__status=Status.PAUSED).exists()

    # The cancel may also come after the process stopped for the pause, before the worker settles it.
    late = _running(cast.team, cast.alice, worker="gpu2@box")
    late_proc = _stoppable_process()
    late_supervisor = Supervisor(late, "tok")
    pause_run(late, cast.alice)
    late_supervisor.obey_stop(late_proc)
    late_proc.wait(timeout=10)
    cancel_run(late)
    assert late_supervisor.conclude(late_proc.returncode) == Status.CANCELLED


def test_a_paused_run_can_be_cancelled_for_good_on_its_page_and_the_queue_page(cast, sent):
    run = _running(cast.team, cast.alice)
    pause_run(run, cast.alice)
    assert run.settle_pause("tok") and run.can_cancel and run_state(run)["can_cancel"]
    staff = get_user_model().objects.create_user("root", is_staff=True)
    queue = Client()
    queue.force_login(staff)
    assert f'action="/fleet/runs/{run.pk}/cancel/"' in queue.get("/fleet/queue/").content.decode()

    assert cancel_run(run)
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and not run.can_cancel and not run_state(run)["can_cancel"]
    assert _messages(run, Status.CANCELLED) == ["cancelled while paused"]
    assert not cancel_run(run)  # once is enough


def test_the_reaper_pauses_a_pausing_run_whose_worker_died_and_requeues_a_running_one(cast, sent):
    pausing = _running(cast.team, cast.alice, worker="dead1@box", checkpoint=8)
    running = _running(cast.team, cast.alice, worker="dead2@box")
    pause_run(pausing, cast.alice)
    Run.objects.filter(pk__in=[pausing.pk, running.pk]).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    assert reap_lost_runs() == 2
    pausing.refresh_from_db()
    running.refresh_from_db()
    assert (pausing.status, pausing.lease_token, pausing.restarts) == (Status.PAUSED, "", 0)
    assert _messages(pausing, Status.PAUSED) == [
        "paused at checkpoint-8 (step 8) by alice (its worker dead1@box stopped answering while it paused)"
    ]
    assert not pausing.events.filter(data__status=Status.LOST).exists() and pausing.can_resume
    assert running.status == Status.QUEUED and running.restarts == 1  # lost, then resumed, as before


def test_a_paused_run_holds_no_worker_no_quota_and_no_device_hours(cast, sent):
    gpu1 = _worker("gpu1")
    TeamQuota.objects.create(team=cast.team, max_gpus=1)
    running = _running(cast.team, cast.alice, worker=gpu1.hostname, started_ago=timedelta(hours=2))
    waiting = _run(cast.team, cast.carol)
    assert admission.admit() == []
    assert Run.objects.get(pk=waiting.pk).waiting_for == "the team's quota: 1 of its 1 GPUs in use"

    pause_run(running, cast.alice)
    assert admission.admit() == []  # pausing: it still holds its worker until it stopped
    assert running.settle_pause("tok")
    running.append_event("status", status=Status.PAUSED, message="paused")  # as its worker does
    assert admission.admit() == [waiting.pk]

    def alices_hours():
        start = timezone.now() - timedelta(days=1)
        return next(row["hours"] for row in device_hours(start, timezone.now()) if row["user"] == "alice")

    hours = alices_hours()
    assert 1.99 < hours < 2.01
    time.sleep(1.5)  # a running run would have gained 0.0004 h meanwhile
    assert alices_hours() == hours
    resume_run(running, cast.alice)  # queued again, it holds nothing until a worker claims it
    assert alices_hours() == hours  # and the two hours it ran still count: a pause resets no quota
    Run.objects.filter(pk=running.pk).update(status=Status.RUNNING)  # a worker took it again...
    held(running, timezone.now() - timedelta(hours=1))  # ...an hour ago
    assert 2.99 < alices_hours() < 3.01


def test_who_may_pause_and_resume_and_a_clear_refusal(cast, sent):
    staff = get_user_model().objects.create_user("root", is_staff=True, is_superuser=True)  # superuser: the admin too
    theirs = _run(cast.team, cast.alice)
    done = _run(cast.team, cast.alice, status=Status.SUCCEEDED)
    outsider, member, admin = Client(), Client(), Client()
    outsider.force_login(cast.mallory)
    member.force_login(cast.carol)
    admin.force_login(staff)

    for url in (
        f"/runs/{theirs.pk}/pause/",
        f"/api/runs/{theirs.pk}/pause/",
        f"/runs/{theirs.pk}/resume/",
        f"/fleet/runs/{theirs.pk}/pause/",
        f"/fleet/runs/{theirs.pk}/resume/",
    ):
        assert outsider.post(url).status_code == 404, url
    assert member.post(f"/fleet/runs/{theirs.pk}/pause/").status_code == 404  # the fleet routes are staff's
    assert Run.objects.get(pk=theirs.pk).status == Status.QUEUED

    refused = member.post(f"/api/runs/{done.pk}/pause/")
    assert refused.status_code == 400
    assert refused.json() == {"status": [f"run {done.pk} is succeeded: only a queued or running run can be paused"]}
    page = member.post(f"/runs/{done.pk}/pause/", follow=True).content.decode()
    assert "only a queued or running run can be paused" in page

    paused = member.post(f"/api/runs/{theirs.pk}/pause/")
    assert paused.status_code == 200 and paused.json()["status"] == Status.PAUSED
    run_page = member.get(f"/runs/{theirs.pk}/").content.decode()
    assert 'class="badge badge-paused"' in run_page
    forms = dict(re.findall(rf'<form method="post" action="/runs/{theirs.pk}/(\w+)/"([^>]*)>', run_page))
    assert "hidden" not in forms["resume"] and "hidden" in forms["pause"] and "hidden" not in forms["cancel"]
    queue_page = admin.get("/fleet/queue/").content.decode()
    assert f'data-run="{theirs.pk}"' in queue_page and "paused by carol" in queue_page

    assert admin.post(f"/fleet/runs/{theirs.pk}/resume/").status_code == 302
    assert Run.objects.get(pk=theirs.pk).status == Status.QUEUED
    assert admin.post(f"/fleet/runs/{theirs.pk}/pause/").status_code == 302
    assert admin.post(f"/fleet/runs/{theirs.pk}/pause/", follow=True).content.decode().count("already paused") == 1
    assert list(FleetAction.objects.order_by("at").values_list("action", "actor__username", "target")) == [
        ("resume", "root", f"run {theirs.pk}"),
        ("pause", "root", f"run {theirs.pk}"),
    ]
    audit_admin = admin.get("/admin/fleet/fleetaction/").content.decode()
    assert audit_admin.count(f"run {theirs.pk}") == 2 and "?action=pause" in audit_admin and "?action=resume" in audit_admin
