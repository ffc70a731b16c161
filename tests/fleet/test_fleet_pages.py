"""The fleet pages are staff's: everyone else gets a 404 from every page, action and socket. Staff
see workers with their GPUs, the queue of every team with why a run waits, device-hours per team
and user (a chart and a CSV), and their actions are audited."""

import csv
import io
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from lab.asgi import application
from lab.fleet import actions
from lab.fleet.models import FleetAction, Worker
from lab.runs.models import Run, Status
from tests.builders import held
from tests.conftest import PASSWORD
from tests.sockets import session_headers


@pytest.fixture
def staff(cast):
    return get_user_model().objects.create_user("root", password=PASSWORD, is_staff=True)


@pytest.fixture
def fleet(cast):
    gpu = Worker.objects.create(hostname="gpu1@box", host="box", queues=["gpu"], cpu_count=16, devices=[
        {"index": 0, "uuid": "GPU-1", "name": "NVIDIA H200", "memory_used": 3 << 30, "memory_total": 141 << 30,
         "utilisation": 97, "temperature": 61, "power_w": 512.0}])
    cpu = Worker.objects.create(hostname="cpu1@box", host="box", queues=["cpu"], cpu_count=2,
                                nvml_error="no GPU read: NVML Shared Library Not Found")
    now = timezone.now()
    running = Run.objects.create(team=cast.team, stage="pretrain", queue="gpu", config={}, status=Status.RUNNING, worker=gpu.hostname,
                                 created_by=cast.alice, started_at=now - timedelta(hours=2), step=40, total_steps=100)
    waiting = Run.objects.create(team=cast.other_team, stage="sft", queue="gpu", config={}, created_by=cast.mallory)
    stranded = Run.objects.create(team=cast.team, stage="generate", queue="inference-big", config={}, created_by=cast.carol)
    done = Run.objects.create(team=cast.other_team, stage="sft", queue="gpu", config={}, status=Status.SUCCEEDED, created_by=cast.mallory,
                              started_at=now - timedelta(days=3, hours=1), finished_at=now - timedelta(days=3))
    held(running, now - timedelta(hours=2))
    held(done, now - timedelta(days=3, hours=1), now - timedelta(days=3))
    return type("Fleet", (), {"gpu": gpu, "cpu": cpu, "running": running, "waiting": waiting, "stranded": stranded, "done": done})


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_nobody_but_staff_finds_a_fleet_page_action_or_socket(cast, fleet):
    urls = ["/fleet/workers/", "/fleet/queue/", "/fleet/usage/", "/fleet/usage/?format=csv"]
    posts = [f"/fleet/workers/{fleet.gpu.pk}/drain/", f"/fleet/runs/{fleet.waiting.pk}/cancel/", f"/fleet/runs/{fleet.done.pk}/requeue/"]
    for user in (cast.alice, cast.bob, cast.mallory):
        client = _client(user)
        assert all(client.get(url).status_code == 404 for url in urls), user
        assert all(client.post(url).status_code == 404 for url in posts), user
    assert Client().get("/fleet/workers/").status_code == 302  # to the login page
    assert Run.objects.get(pk=fleet.waiting.pk).status == Status.QUEUED and not Worker.objects.get(pk=fleet.gpu.pk).draining
    assert not FleetAction.objects.exists()


def test_staff_see_the_workers_with_their_gpus_and_the_runs_they_hold(staff, fleet):
    page = _client(staff).get("/fleet/workers/").content.decode()
    assert "NVIDIA H200" in page and "gpu1@box" in page and "NVML Shared Library Not Found" in page
    assert f'"runs": [{{"id": {fleet.running.pk}, "team": "Alpha", "stage": "pretrain"' in page


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_workers_socket_streams_the_fleet_to_staff_and_closes_on_anyone_else(cast, staff, fleet):
    for user, expected in ((cast.alice, None), (staff, "gpu1@box")):
        communicator = WebsocketCommunicator(application, "/ws/fleet/", headers=await sync_to_async(session_headers)(user))
        connected, code = await communicator.connect()
        if expected is None:
            assert not connected and code == 4404
            continue
        message = await communicator.receive_json_from(timeout=5)
        assert message["type"] == "fleet" and {w["hostname"] for w in message["workers"]} == {"gpu1@box", "cpu1@box"}
        await communicator.send_json_to({"drain": "everything"})
        assert (await communicator.receive_json_from(timeout=5))["status"] == 400
        await communicator.disconnect()


def test_the_queue_shows_every_teams_runs_in_order_and_why_they_wait(staff, fleet):
    page = _client(staff).get("/fleet/queue/").content.decode()
    assert page.index(f'data-run="{fleet.running.pk}"') < page.index(f'data-run="{fleet.waiting.pk}"')
    assert "a free worker of &#x27;gpu&#x27; (all are busy)" in page
    assert "no online worker takes the &#x27;inference-big&#x27; queue" in page
    assert f'data-run="{fleet.done.pk}"' not in page


def test_usage_counts_device_hours_per_team_and_user_within_the_period_and_downloads_as_csv(staff, fleet):
    client = _client(staff)
    rows = list(csv.DictReader(io.StringIO(client.get("/fleet/usage/?days=1&format=csv").content.decode())))
    assert [(r["team"], r["user"], r["queue"]) for r in rows] == [("Alpha", "alice", "gpu")]
    assert float(rows[0]["hours"]) == pytest.approx(2.0, abs=0.01)
    week = list(csv.DictReader(io.StringIO(client.get("/fleet/usage/?days=7&format=csv").content.decode())))
    assert {(r["team"], round(float(r["hours"]), 2)) for r in week} == {("Alpha", 2.0), ("Mallory's team", 1.0)}
    assert "usage-chart" in client.get("/fleet/usage/").content.decode()
    for bad in ("0", "-3", "x", "9" * 40, "3661"):
        response = client.get(f"/fleet/usage/?days={bad}")
        assert response.status_code == 400 and b"days" in response.content, bad


def test_staff_actions_are_audited_and_a_bad_id_is_a_404(staff, fleet, monkeypatch):
    told = []
    monkeypatch.setattr(actions, "_tell_worker", lambda worker, command: told.append((worker.hostname, command)) or "ok")
    client = _client(staff)
    assert client.post(f"/fleet/workers/{fleet.gpu.pk}/drain/", {"draining": "1"}).status_code == 302
    assert Worker.objects.get(pk=fleet.gpu.pk).state == Worker.State.DRAINING
    client.post(f"/fleet/workers/{fleet.gpu.pk}/drain/", {"draining": "0"})
    assert told == [("gpu1@box", "cancel_consumer"), ("gpu1@box", "add_consumer")]
    assert client.post(f"/fleet/runs/{fleet.waiting.pk}/cancel/").status_code == 302
    assert Run.objects.get(pk=fleet.waiting.pk).status == Status.CANCELLED
    refused = client.post(f"/fleet/runs/{fleet.done.pk}/requeue/", follow=True).content.decode()
    assert "has finished" in refused
    audit = list(FleetAction.objects.order_by("at").values_list("actor__username", "action", "target"))
    assert audit == [("root", "drain", "worker gpu1@box"), ("root", "undrain", "worker gpu1@box"),
                     ("root", "cancel", f"run {fleet.waiting.pk}")]
    for bad in ("999999", "x", "9" * 40, "-1"):
        assert client.post(f"/fleet/workers/{bad}/drain/").status_code == 404
        assert client.post(f"/fleet/runs/{bad}/cancel/").status_code == 404
    assert client.get(f"/fleet/runs/{fleet.running.pk}/cancel/").status_code == 405


def test_runs_events_and_artifacts_are_read_only_in_djangos_admin(staff, fleet):
    get_user_model().objects.filter(pk=staff.pk).update(is_superuser=True)
    client = _client(staff)
    assert client.get("/admin/runs/run/").status_code == 200
    assert client.get(f"/admin/runs/run/{fleet.running.pk}/change/").status_code == 200
    assert client.get("/admin/runs/run/add/").status_code == 403
    assert client.get("/admin/runs/runevent/").status_code == 200 and client.get("/admin/runs/artifact/").status_code == 200
    assert client.get("/admin/fleet/fleetaction/").status_code == 200
    client.post(f"/admin/runs/run/{fleet.running.pk}/delete/", {"post": "yes"})
    assert Run.objects.filter(pk=fleet.running.pk).exists()
