"""Workers register and heartbeat with what NVML reads of their GPUs (against a fake NVML), a
CPU-only host says why it reads none, and a worker whose heartbeats stop is offline."""

import os
import threading
import time
from datetime import timedelta
from types import SimpleNamespace
from unittest import mock

import pynvml
import pytest
from django.utils import timezone

from lab.fleet.models import Worker
from workers import fleet
from workers.gpus import read_devices

GIB = 1 << 30


def fake_nvml(count=2, unsupported=()):
    def refuse_if(name, value):
        def read(handle, *args, **kwargs):
            if name in unsupported:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
            return value(handle)
        return read

    return mock.patch.multiple(
        pynvml,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: count,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=refuse_if("uuid", lambda h: f"GPU-{h:04d}"),
        nvmlDeviceGetName=refuse_if("name", lambda h: "NVIDIA H200"),
        nvmlDeviceGetMemoryInfo=refuse_if("memory", lambda h: SimpleNamespace(used=(h + 1) * GIB, total=141 * GIB)),
        nvmlDeviceGetUtilizationRates=refuse_if("utilisation", lambda h: SimpleNamespace(gpu=50 + h, memory=10)),
        nvmlDeviceGetTemperatureV=refuse_if("temperature", lambda h: 40 + h),
        nvmlDeviceGetTemperature=refuse_if("temperature_v0", lambda h: 30 + h),
        nvmlDeviceGetPowerUsage=refuse_if("power", lambda h: 250_500),
    )


def test_every_device_is_read_with_its_uuid_memory_utilisation_temperature_and_power():
    with fake_nvml(count=2):
        devices, why = read_devices()
    assert why == ""
    assert devices[1] == {"index": 1, "uuid": "GPU-0001", "name": "NVIDIA H200", "memory_used": 2 * GIB,
                          "memory_total": 141 * GIB, "utilisation": 51, "temperature": 41, "power_w": 250.5}


def test_a_field_the_device_does_not_support_reads_none_and_the_others_still_come():
    with fake_nvml(count=1, unsupported=("power", "utilisation", "temperature")):
        (device,), why = read_devices()
    assert why == "" and device["power_w"] is None and device["utilisation"] is None
    assert device["temperature"] == 30  # an older driver: the deprecated call answers instead
    assert device["memory_total"] == 141 * GIB


def test_a_host_without_nvml_reads_no_devices_and_says_why():
    def no_library():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    with mock.patch.object(pynvml, "nvmlInit", no_library):
        devices, why = read_devices()
    assert devices == [] and why.startswith("no GPU read:") and "not found" in why.lower()


@pytest.mark.django_db
def test_a_worker_registers_heartbeats_and_goes_offline_when_its_beats_stop(settings):
    with fake_nvml(count=1):
        worker = fleet.register("gpu1@host", ["gpu", "inference"])
    assert worker.state == Worker.State.ONLINE and worker.queues == ["gpu", "inference"]
    assert worker.devices[0]["name"] == "NVIDIA H200"

    Worker.objects.filter(pk=worker.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=settings.LAB_WORKER_OFFLINE_SECONDS + 1))
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.OFFLINE
    with fake_nvml(count=1):
        assert fleet.heartbeat("gpu1@host")
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.ONLINE

    Worker.objects.filter(pk=worker.pk).update(draining=True)
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.DRAINING
    fleet.stopped("gpu1@host")
    assert Worker.objects.get(pk=worker.pk).state == Worker.State.OFFLINE
    assert not fleet.heartbeat("nobody@nowhere")


def test_a_pool_process_is_never_forked_while_a_heartbeat_uses_the_database():
    """SQLite copies a process's locks into a fork: a pool process forked mid-beat waited out the busy
    timeout (30 s) on a lock nobody held, and its run's claim failed. A fork waits for the beat."""
    beat_started, beat_seconds = threading.Event(), 0.5

    def a_beat():
        with fleet.beat_uses_the_database:
            beat_started.set()
            time.sleep(beat_seconds)

    threading.Thread(target=a_beat).start()
    beat_started.wait(5)
    asked = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: its copy of the lock is free
        os._exit(0 if fleet.beat_uses_the_database.acquire(timeout=1) else 1)
    forked_after = time.monotonic() - asked
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert forked_after >= beat_seconds * 0.8
    assert fleet.beat_uses_the_database.acquire(timeout=1)  # and the parent's is free again
    fleet.beat_uses_the_database.release()
