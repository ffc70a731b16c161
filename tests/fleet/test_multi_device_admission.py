"""A run that asks for several devices: only a stage that can train on several may ask, and a worker
offers its GPUs, or on a host without any its CPU cores (gloo ranks)."""

import pytest

from lab.fleet import admission
from lab.fleet.models import Worker
from lab.runs.actions import create_run
from lab.runs.models import Run
from training.config import ConfigError


@pytest.mark.django_db
def test_a_cpu_only_worker_offers_its_cores_and_a_gpu_worker_its_gpus(cast):
    Worker.objects.create(hostname="cpu@box", host="box", queues=["gpu"], cpu_count=4, devices=[])
    Worker.objects.create(hostname="gpu@box", host="box", queues=["gpu"], cpu_count=64, devices=[{"index": 0}])
    two, five = (Run.objects.create(team=cast.team, stage="pretrain", queue="gpu", config={}, created_by=cast.alice,
                                    devices=devices) for devices in (2, 5))
    decisions = {d.run.pk: d for d in admission.plan()}
    assert decisions[two.pk].worker == "cpu@box"
    assert decisions[five.pk].why == "no worker of 'gpu' has 5 devices"  # 4 cores, 1 GPU


@pytest.mark.django_db
@pytest.mark.parametrize(("stage", "devices", "message"), [
    ("reward", 2, "the reward stage runs on one device, not 2"),
    ("pretrain", 0, "a run needs at least one device, not 0"),
    ("pretrain", -3, "a run needs at least one device, not -3"),
])
def test_a_run_asks_for_devices_its_stage_can_use(cast, stage, devices, message):
    with pytest.raises(ConfigError) as error:
        create_run(cast.team, stage, "gpu", {}, {}, cast.alice, devices=devices)
    assert (error.value.field, error.value.message) == ("devices", message)
    assert not Run.objects.exists()
