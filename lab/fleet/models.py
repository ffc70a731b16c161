"""The fleet: each Celery worker registers itself and heartbeats (workers/fleet.py), with what its
devices read through NVML; staff actions on workers and runs are kept as an audit trail."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Worker(models.Model):
    class State(models.TextChoices):
        ONLINE = "online", "Online"
        DRAINING = "draining", "Draining"
        OFFLINE = "offline", "Offline"

    hostname = models.CharField(max_length=200, unique=True)
    """Celery's node name (`gpu1@host`): what runs record in `Run.worker` and control commands address."""
    host = models.CharField(max_length=200)
    queues = models.JSONField(default=list)
    pid = models.IntegerField(null=True)
    cpu_count = models.IntegerField(default=0)
    devices = models.JSONField(default=list)
    """The GPUs as NVML read them at the last heartbeat: index, uuid, name, memory used/total (bytes),
    utilisation (%), temperature (°C), power (W); empty on a worker without one."""
    nvml_error = models.CharField(max_length=300, blank=True)
    """Why no GPU was read (no NVML library: a CPU-only host), shown instead of a failure."""
    draining = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def heartbeat_age_s(self) -> float:
        return (timezone.now() - self.heartbeat_at).total_seconds()

    @property
    def state(self) -> str:
        if self.stopped_at is not None or self.heartbeat_age_s > settings.LAB_WORKER_OFFLINE_SECONDS:
            return self.State.OFFLINE
        return self.State.DRAINING if self.draining else self.State.ONLINE


class FleetAction(models.Model):
    """Who did what to the fleet, and when: drain, cancel, pause, requeue, reprioritise."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=40)
    target = models.CharField(max_length=200)
    """`worker gpu1@host` or `run 42`."""
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.action} {self.target}"


class TeamQuota(models.Model):
    """What a team may hold of the GPU workers; a team without one is not limited."""

    team = models.OneToOneField("accounts.Team", on_delete=models.CASCADE, related_name="quota")
    max_gpus = models.PositiveIntegerField(null=True, blank=True, help_text="GPUs its runs may hold at once; empty: no limit.")
    gpu_hours_per_month = models.FloatField(null=True, blank=True,
                                            help_text="GPU-hours its runs may use in a calendar month (UTC); empty: no limit.")

    def __str__(self) -> str:
        return f"quota of {self.team}"
