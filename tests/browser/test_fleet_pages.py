"""Staff see the fleet as a person would: the workers page draws each worker's GPUs and redraws live
from its socket as a heartbeat changes them; the queue page lists runs with why they wait, and a quota typed there is saved."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from lab.fleet.models import Worker
from lab.runs.models import Run, Status
from tests.browser.pages import open_page
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_the_workers_page_draws_gpus_and_follows_heartbeats_live(cast, processes, browser, tmp_path):
    get_user_model().objects.create_user("root", password=PASSWORD, is_staff=True)
    gpu = Worker.objects.create(hostname="gpu1@box", host="box", queues=["gpu"], cpu_count=16, devices=[
        {"index": 0, "uuid": "GPU-1", "name": "NVIDIA H200", "memory_used": 40 << 30, "memory_total": 141 << 30,
         "utilisation": 97, "temperature": 61, "power_w": 512.0}])
    Worker.objects.create(hostname="cpu1@box", host="box", queues=["cpu"], cpu_count=2, nvml_error="no GPU read: NVML not found")
    Run.objects.create(team=cast.team, stage="pretrain", queue="gpu", config={}, status=Status.RUNNING, worker=gpu.hostname,
                       created_by=cast.alice, started_at=timezone.now(), step=40, total_steps=100)
    waiting = Run.objects.create(team=cast.other_team, stage="sft", queue="gpu", config={}, created_by=cast.mallory)
    base_url = processes.web()
    page, errors = open_page(browser, base_url, "/fleet/workers/", "root", PASSWORD)
    row = page.locator("tr[data-worker='gpu1@box']")
    assert "NVIDIA H200" in row.inner_text() and "40.0/141.0 GiB" in row.inner_text() and "step 40/100" in row.inner_text()
    assert "CPU only (2 cores): no GPU read" in page.locator("tr[data-worker='cpu1@box']").inner_text()

    devices = gpu.devices
    devices[0]["utilisation"] = 12
    Worker.objects.filter(pk=gpu.pk).update(devices=devices, heartbeat_at=timezone.now())
    page.wait_for_function("document.querySelector(\"tr[data-worker='gpu1@box']\").innerText.includes('· 12% ·')", timeout=10_000)
    page.screenshot(path=str(tmp_path / "workers.png"), full_page=True)
    print(f"screenshot: {tmp_path / 'workers.png'}")

    page.goto(f"{base_url}/fleet/queue/")
    assert "a free worker of 'gpu' (all are busy)" in page.locator(f"tr[data-run='{waiting.pk}']").inner_text()
    quota = page.locator(f"tr[data-team='{cast.other_team.pk}']")
    quota.locator("input[name=max_gpus]").fill("1")
    quota.locator("button").click()
    page.wait_for_url(f"{base_url}/fleet/queue/")
    assert page.locator(f"tr[data-team='{cast.other_team.pk}'] input[name=max_gpus]").input_value() == "1"
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
    assert errors == []
