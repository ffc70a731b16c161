"""Admission: a queued run goes to the broker only when an online worker of its queue is free for it,
highest priority first, then oldest; a team at its quota waits while another team's run goes; what
waits says why, once per reason; the queue page shows the same order."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from lab.fleet import actions, admission
from lab.fleet.models import TeamQuota, Worker
from lab.runs.models import Run, Status
from tests.builders import held


@pytest.fixture
def sent(monkeypatch):
    """The runs handed to the broker, in order (nothing reaches a real broker)."""
    sent = []
    monkeypatch.setattr(admission, "send", lambda run: sent.append(run.pk) or True)
    return sent


def _worker(name, queues=("gpu",), gpus=1, **fields):
    devices = [{"index": i, "name": "NVIDIA H200"} for i in range(gpus)]
    return Worker.objects.create(hostname=f"{name}@box", host="box", queues=list(queues), devices=devices, **fields)


def _run(team, user, queue="gpu", **fields):
    return Run.objects.create(team=team, stage="sft", queue=queue, config={}, created_by=user, **fields)


@pytest.mark.django_db(transaction=True)
def test_runs_go_in_priority_then_age_order_and_only_as_workers_free_up(cast, sent):
    old, new, urgent = (_run(cast.team, cast.alice) for _ in range(3))
    Run.objects.filter(pk=urgent.pk).update(priority=5)
    assert admission.admit() == [] and sent == []  # no worker yet
    assert Run.objects.get(pk=old.pk).waiting_for == "no online worker takes the 'gpu' queue"

    gpu1 = _worker("gpu1")
    assert admission.admit() == [urgent.pk] and sent == [urgent.pk]
    assert admission.admit() == []  # admitted but not yet claimed: it holds the only worker
    Run.objects.filter(pk=urgent.pk).update(status=Status.RUNNING, worker=gpu1.hostname)
    assert admission.admit() == []  # and running, it still does
    assert [d.run.pk for d in admission.plan()] == [old.pk, new.pk]
    assert Run.objects.get(pk=old.pk).waiting_for == "a free worker of 'gpu' (all are busy)"

    Run.objects.filter(pk=urgent.pk).update(status=Status.SUCCEEDED)
    assert admission.admit() == [old.pk]
    waits = [e.data["message"] for e in Run.objects.get(pk=new.pk).events.all()]
    assert waits == ["waiting for no online worker takes the 'gpu' queue", "waiting for a free worker of 'gpu' (all are busy)"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_claiming_its_run_while_admission_plans_is_not_taken_for_free(cast, sent, monkeypatch):
    """Admission reads the runs once: a claim landing between its reads (here while it reads the month's
    GPU-hours) must not make the claiming worker look free, nor send a second run to it."""
    gpu1 = _worker("gpu1")
    TeamQuota.objects.create(team=cast.team, gpu_hours_per_month=100)
    first = _run(cast.team, cast.alice)
    assert admission.admit() == [first.pk]
    second = _run(cast.team, cast.alice)
    hours = admission.device_hours

    def claimed_meanwhile(*args, **kwargs):
        assert first.claim(gpu1.hostname, 30)
        return hours(*args, **kwargs)

    monkeypatch.setattr(admission, "device_hours", claimed_meanwhile)
    assert admission.admit() == []
    assert Run.objects.get(pk=second.pk).waiting_for == "a free worker of 'gpu' (all are busy)"


@pytest.mark.django_db(transaction=True)
def test_a_team_at_its_quota_waits_while_another_teams_run_goes(cast, sent):
    _worker("gpu1"), _worker("gpu2"), _worker("gpu3")
    TeamQuota.objects.create(team=cast.team, max_gpus=1)
    first, second = _run(cast.team, cast.alice), _run(cast.team, cast.carol)
    theirs = _run(cast.other_team, cast.mallory)
    assert admission.admit() == [first.pk, theirs.pk]
    assert Run.objects.get(pk=second.pk).waiting_for == "the team's quota: 1 of its 1 GPUs in use"
    assert _run(cast.team, cast.alice, queue="cpu").pk not in admission.admit()  # no cpu worker; quotas are GPUs'


@pytest.mark.django_db(transaction=True)
def test_gpu_hours_this_month_are_a_quota_too(cast, sent):
    _worker("gpu1")
    TeamQuota.objects.create(team=cast.team, gpu_hours_per_month=2)
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    used = _run(cast.team, cast.alice, status=Status.SUCCEEDED, devices=2, started_at=month_start,
                finished_at=month_start + timedelta(minutes=61))
    held(used, month_start, month_start + timedelta(minutes=61))
    waiting = _run(cast.team, cast.alice)
    assert admission.admit() == []
    assert Run.objects.get(pk=waiting.pk).waiting_for == "the team's quota: 2.0 of its 2 GPU-hours this month used"


@pytest.mark.django_db(transaction=True)
def test_a_run_waits_for_a_worker_with_as_many_devices_and_the_smallest_that_fits_is_used(cast, sent):
    _worker("one", gpus=1)
    eight = _worker("eight", gpus=8)
    big = _run(cast.team, cast.alice, devices=4)
    small = _run(cast.team, cast.alice)
    decisions = {d.run.pk: d for d in admission.plan()}
    assert decisions[big.pk].worker == eight.hostname and decisions[small.pk].worker == "one@box"
    Worker.objects.filter(pk=eight.pk).update(draining=True)
    assert admission.plan()[0].why == "no worker of 'gpu' has 4 devices"


@pytest.mark.django_db(transaction=True)
def test_offline_and_draining_workers_take_nothing(cast, sent, settings):
    _worker("gone", heartbeat_at=timezone.now() - timedelta(seconds=settings.LAB_WORKER_OFFLINE_SECONDS + 1))
    _worker("drained", draining=True)
    _worker("stopped", stopped_at=timezone.now())
    run = _run(cast.team, cast.alice)
    assert admission.admit() == []
    assert Run.objects.get(pk=run.pk).waiting_for == "no online worker takes the 'gpu' queue"


@pytest.mark.django_db(transaction=True)
def test_staff_change_a_priority_and_the_queue_page_shows_the_order_admission_takes(cast, sent):
    staff = get_user_model().objects.create_user("root", is_staff=True)
    gpu1 = _worker("gpu1")
    running = _run(cast.team, cast.alice, status=Status.RUNNING, worker=gpu1.hostname)
    first, later = _run(cast.team, cast.alice), _run(cast.other_team, cast.mallory)
    client = Client()
    client.force_login(staff)
    assert client.post(f"/fleet/runs/{later.pk}/priority/", {"priority": "3"}).status_code == 302
    assert Run.objects.get(pk=later.pk).priority == 3
    page = client.get("/fleet/queue/").content.decode()
    assert page.index(f'data-run="{running.pk}"') < page.index(f'data-run="{later.pk}"') < page.index(f'data-run="{first.pk}"')
    for bad in ("x", "9" * 30, "", "1e3"):
        response = client.post(f"/fleet/runs/{later.pk}/priority/", {"priority": bad})
        assert response.status_code == 400 and b"priority" in response.content, bad
    Run.objects.filter(pk=running.pk).update(status=Status.SUCCEEDED)
    assert admission.admit() == [later.pk]
    done = client.post(f"/fleet/runs/{running.pk}/priority/", {"priority": "1"}, follow=True).content.decode()
    assert "only a queued run" in done
    audit = actions.FleetAction.objects.filter(action="priority").get()
    assert (audit.actor, audit.detail) == (staff, "0 → 3")


@pytest.mark.django_db(transaction=True)
def test_staff_set_a_teams_quota_and_the_team_sees_it(cast, sent):
    staff = get_user_model().objects.create_user("root", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.post(f"/fleet/teams/{cast.team.pk}/quota/", {"max_gpus": "2", "gpu_hours_per_month": ""}).status_code == 302
    assert (cast.team.quota.max_gpus, cast.team.quota.gpu_hours_per_month) == (2, None)
    for field, bad in (("max_gpus", "-1"), ("max_gpus", "x"), ("gpu_hours_per_month", "nan"), ("gpu_hours_per_month", "1e400")):
        response = client.post(f"/fleet/teams/{cast.team.pk}/quota/", {field: bad})
        assert response.status_code == 400 and field.encode() in response.content, (field, bad)
    mine = Client()
    mine.force_login(cast.alice)
    assert "at most 2 GPUs at once" in mine.get("/notebooks/").content.decode()
    assert mine.post(f"/fleet/teams/{cast.team.pk}/quota/", {"max_gpus": "99"}).status_code == 404
