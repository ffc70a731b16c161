"""Runs, their events and the artifacts they produce.

A Run is the immutable record of one execution of a cell: frozen config, the exact inputs, the code
version, which worker ran it, and every event it wrote. The database row is the source of truth for
its state; workers claim it with a conditional UPDATE and hold it with a heartbeat lease.
"""

import time
import uuid

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from lab.accounts.models import Team


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    PAUSING = "pausing", "Pausing"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    LOST = "lost", "Lost"


# A paused run holds no worker, no lease and no place in the queue or in its team's quota: it is
# neither active nor held, only resumable (from the start if it was paused before any checkpoint).
ACTIVE = (Status.QUEUED, Status.RUNNING, Status.CANCELLING, Status.PAUSING)
HELD_BY_WORKER = (Status.RUNNING, Status.CANCELLING, Status.PAUSING)
RESUMABLE = (Status.CANCELLED, Status.FAILED, Status.LOST, Status.PAUSED)
PAUSABLE = (Status.QUEUED, Status.RUNNING)
CANCELLABLE = (Status.QUEUED, Status.RUNNING, Status.PAUSING, Status.PAUSED)


class RunQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "RunQuerySet":
        return self.filter(team=team)

    def active(self) -> "RunQuerySet":
        return self.filter(status__in=ACTIVE)

    def with_expired_lease(self) -> "RunQuerySet":
        return self.filter(status__in=HELD_BY_WORKER, lease_expires_at__lt=timezone.now())


class Run(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="runs")
    cell = models.ForeignKey("notebooks.Cell", null=True, on_delete=models.SET_NULL, related_name="runs")
    stage = models.CharField(max_length=30)
    queue = models.CharField(max_length=50, default="cpu")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # The resolved training config (paths included) and the exact input versions, frozen at launch.
    config = models.JSONField()
    inputs = models.JSONField(default=dict)
    code_version = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)

    # Lease: the worker that claimed the run renews it; a reaper marks runs with an expired lease lost.
    worker = models.CharField(max_length=200, blank=True)
    lease_token = models.CharField(max_length=36, blank=True)
    lease_expires_at = models.DateTimeField(null=True)
    attempt = models.IntegerField(default=0)
    restarts = models.IntegerField(default=0)

    # Admission (lab/fleet/admission.py): a queued run is sent to the broker only once a worker of its
    # queue is free for it, highest priority first, within its team's quota; until then it says why it waits.
    priority = models.IntegerField(default=0)
    devices = models.PositiveSmallIntegerField(default=1)
    admitted_at = models.DateTimeField(null=True, blank=True)
    waiting_for = models.CharField(max_length=300, blank=True)

    # Progress, kept up to date from the event stream so lists need not read events.
    last_seq = models.BigIntegerField(default=0)
    step = models.IntegerField(default=0)
    total_steps = models.IntegerField(null=True)
    latest_metrics = models.JSONField(default=dict)
    last_checkpoint = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    error_field = models.CharField(max_length=100, blank=True)
    # Who asked for the run's latest pause: the worker that stops it names them in the run's events.
    paused_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.stage}, {self.status})"

    def frozen_inputs(self) -> list[tuple[str, dict]]:
        """(key, input) pairs of the frozen inputs, a list-valued input (several models) giving one per item."""
        pairs = []
        for key, used in self.inputs.items():
            pairs += [(key, item) for item in used] if isinstance(used, list) else [(key, used)]
        return pairs

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def can_resume(self) -> bool:
        return self.status in RESUMABLE and (bool(self.last_checkpoint) or self.status == Status.PAUSED)

    @property
    def can_pause(self) -> bool:
        return self.status in PAUSABLE

    @property
    def can_cancel(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def paused_by_name(self) -> str:
        return self.paused_by.username if self.paused_by else "a deleted user"

    @property
    def output_dir(self):
        return settings.LAB_DATA_DIR / "runs" / str(self.pk)

    @property
    def group_name(self) -> str:
        return f"run.{self.pk}"

    # Single-row transitions. Each is a conditional UPDATE, so two processes never both win.

    def claim(self, worker: str, lease_seconds: float) -> str | None:
        """Take the lease of a queued run that was sent (admitted). Returns the lease token, or None if
        someone else has it, or if the run was paused and resumed since this message was sent: it waits
        for admission again, and a message from before must not jump the queue."""
        token = str(uuid.uuid4())
        now = timezone.now()
        claimed = Run.objects.filter(pk=self.pk, status=Status.QUEUED, admitted_at__isnull=False).update(
            status=Status.RUNNING,
            worker=worker,
            lease_token=token,
            lease_expires_at=now + timezone.timedelta(seconds=lease_seconds),
            attempt=F("attempt") + 1,
            started_at=now,
            finished_at=None,
            error="",
            error_field="",
        )
        if not claimed:
            return None
        self.refresh_from_db()
        return token

    def renew_lease(self, token: str, lease_seconds: float) -> bool:
        """Extend the lease; False means it was taken from us (reaped) and we must stop."""
        return bool(
            Run.objects.filter(pk=self.pk, lease_token=token, status__in=HELD_BY_WORKER).update(
                lease_expires_at=timezone.now() + timezone.timedelta(seconds=lease_seconds)
            )
        )

    def request_cancel(self) -> bool:
        """Ask for a stop. A queued or paused run is cancelled at once (no worker holds it); a running one
        is stopped by its worker."""
        if Run.objects.filter(pk=self.pk, status__in=(Status.QUEUED, Status.PAUSED)).update(
            status=Status.CANCELLED, finished_at=timezone.now()
        ):
            self.refresh_from_db()
            return True
        # A cancel during a pause wins: the worker stops the run either way, and ends it cancelled.
        changed = Run.objects.filter(pk=self.pk, status__in=(Status.RUNNING, Status.PAUSING)).update(status=Status.CANCELLING)
        self.refresh_from_db()
        return bool(changed)

    def request_pause(self, by) -> bool:
        """Ask for a pause. A queued run is paused at once (a message already sent for it finds it not
        queued and ends: `claim`); a running one is stopped at a checkpoint by its worker (PAUSING)."""
        if Run.objects.filter(pk=self.pk, status=Status.QUEUED).update(
            status=Status.PAUSED, paused_by=by, finished_at=timezone.now(), waiting_for=""
        ):
            self.refresh_from_db()
            return True
        changed = Run.objects.filter(pk=self.pk, status=Status.RUNNING).update(status=Status.PAUSING, paused_by=by)
        self.refresh_from_db()
        return bool(changed)

    def settle_pause(self, token: str | None = None) -> bool:
        """PAUSING → PAUSED, the lease let go: by the worker holding `token`, its training process
        stopped; or, without a token, by the reaper once the lease expired (the worker died)."""
        pausing = Run.objects.filter(pk=self.pk, status=Status.PAUSING)
        pausing = pausing.filter(lease_token=token) if token else pausing.filter(lease_expires_at__lt=timezone.now())
        done = pausing.update(status=Status.PAUSED, lease_token="", lease_expires_at=None, finished_at=timezone.now())
        self.refresh_from_db()
        return bool(done)

    def finish(self, token: str, status: str, error: str = "", error_field: str = "") -> bool:
        done = Run.objects.filter(pk=self.pk, lease_token=token, status__in=HELD_BY_WORKER).update(
            status=status,
            finished_at=timezone.now(),
            lease_expires_at=None,
            error=error,
            error_field=error_field,
        )
        self.refresh_from_db()
        return bool(done)

    def requeue(self, from_statuses, count_restart: bool) -> bool:
        """Back to the queue, to continue from the last checkpoint; its next attempt has not started."""
        updates = {"status": Status.QUEUED, "lease_token": "", "lease_expires_at": None, "started_at": None,
                   "finished_at": None, "admitted_at": None}
        if count_restart:
            updates["restarts"] = F("restarts") + 1
        done = Run.objects.filter(pk=self.pk, status__in=from_statuses).update(**updates)
        self.refresh_from_db()
        return bool(done)

    def mark_lost(self) -> bool:
        """A run whose worker died is lost; one that was pausing is paused instead (settle_pause)."""
        done = Run.objects.filter(
            pk=self.pk, status__in=(Status.RUNNING, Status.CANCELLING), lease_expires_at__lt=timezone.now()
        ).update(status=Status.LOST, lease_token="", lease_expires_at=None, finished_at=timezone.now())
        self.refresh_from_db()
        return bool(done)

    def store_events(self, batch: list[dict], lease_token: str) -> bool:
        """Store a batch of the training process's events (docs/contracts.md) under the worker's lease:
        the events, what they say of the run (step, metrics, checkpoint, total) and the outputs they
        announce, in one transaction. False, and nothing kept, when the lease was taken from the worker."""
        from lab.runs.outputs import register_output

        updates = self._folded(batch)
        with transaction.atomic():
            RunEvent.objects.bulk_create(RunEvent(run=self, seq=e["seq"], t=e.get("t", time.time()), type=e["type"],
                                                  data={k: v for k, v in e.items() if k not in ("seq", "t", "type")})
                                         for e in batch)
            if not Run.objects.filter(pk=self.pk, lease_token=lease_token).update(**updates):
                transaction.set_rollback(True)
                return False
            for event in batch:
                if event["type"] == "artifact":
                    register_output(self, event)
        for key, value in updates.items():
            setattr(self, key, value)
        return True

    def _folded(self, batch: list[dict]) -> dict:
        """The run's fields as the batch leaves them."""
        updates: dict = {"last_seq": batch[-1]["seq"]}
        metrics = dict(self.latest_metrics)
        for event in batch:
            kind = event["type"]
            if kind == "metric":
                metrics.update(event.get("values", {}))
                updates["step"] = event.get("step", self.step)
            elif kind == "status":
                if event.get("total_steps") is not None:
                    updates["total_steps"] = event["total_steps"]
                if event.get("status") == "running" and event.get("step") is not None:
                    updates["step"] = event["step"]  # a resumed attempt starts at its checkpoint's step
            elif kind == "checkpoint":
                updates["last_checkpoint"] = event["path"]
                updates["step"] = event.get("step", self.step)
        updates["latest_metrics"] = metrics
        return updates

    @transaction.atomic
    def append_event(self, type: str, **data) -> "RunEvent":
        """Write an event from outside the training process (queued, lost, worker notes).

        Only called while no training process writes for this run, so taking the next seq
        under a row lock keeps numbering contiguous.
        """
        run = Run.objects.select_for_update().get(pk=self.pk)
        event = RunEvent.objects.create(
            run=run, seq=run.last_seq + 1, t=timezone.now().timestamp(), type=type, data=data
        )
        Run.objects.filter(pk=self.pk).update(last_seq=event.seq)
        self.last_seq = event.seq
        return event


    @transaction.atomic
    def append_event_while_queued(self, type: str, **data) -> "RunEvent | None":
        """append_event, if the run is still queued; None once a worker has claimed it (its training
        process numbers the events from then on). The row lock orders this against the claim."""
        if not Run.objects.select_for_update().filter(pk=self.pk, status=Status.QUEUED).exists():
            return None
        return self.append_event(type, **data)


class RunEvent(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.BigIntegerField()
    t = models.FloatField()
    type = models.CharField(max_length=20)
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="one_event_per_seq")]
        # Usage and GPU-hour quotas read the status events of a period (lab/fleet/usage.py).
        indexes = [models.Index(fields=["type", "t"], name="runevent_type_t")]

    def __str__(self) -> str:
        return f"run {self.run_id} #{self.seq} {self.type}"

    def as_message(self) -> dict:
        return {"seq": self.seq, "t": self.t, "type": self.type, **self.data}


class Artifact(models.Model):
    class Kind(models.TextChoices):
        TOKENIZER = "tokenizer", "Tokenizer"
        CHECKPOINT = "checkpoint", "Checkpoint"
        GENERATIONS = "generations", "Generated responses"
        EVALUATION = "evaluation", "Evaluation"
        EXPORT = "export", "Quantised export"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="artifacts")
    run = models.ForeignKey(Run, null=True, on_delete=models.SET_NULL, related_name="artifacts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=200)
    # Relative to LAB_DATA_DIR: a file (tokenizer.json) or a Hugging Face folder (checkpoint).
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict)
    parent_artifacts = models.ManyToManyField("self", symmetrical=False, related_name="children", blank=True)
    parent_datasets = models.ManyToManyField("datasets.Dataset", related_name="artifacts", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def absolute_path(self):
        return settings.LAB_DATA_DIR / self.path
