import uuid

from django.conf import settings
from django.db import models

from lab.accounts.models import Team


class DatasetQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "DatasetQuerySet":
        return self.filter(team=team)


class Dataset(models.Model):
    class Kind(models.TextChoices):
        TEXT = "text", "Text corpus"
        SFT = "sft", "Supervised fine-tuning"
        PREFERENCE = "preference", "Preference pairs"
        CLASSIFICATION = "classification", "Classification"
        EVAL = "eval", "Evaluation"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The dataset this one was made from (by a clean cell, say): its versions form a tree.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions")
    # The run that made it (a clean cell's), when it was not uploaded.
    source_run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="datasets")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.TEXT)
    # One of training.datasets.FORMATS (txt, jsonl, csv, tsv, parquet, zip, tar), told by the file name.
    format = models.CharField(max_length=10)
    # Relative to LAB_DATA_DIR, so web and workers on other machines find the same file.
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    n_records = models.IntegerField()
    # training.datasets.describe() of the file: length histograms, counts by label/role/answer,
    # and the page index that lets the preview start reading near any page.
    stats = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def absolute_path(self):
        return settings.LAB_DATA_DIR / self.path


class Upload(models.Model):
    """A file arriving in chunks (resumable after a dropped connection); it becomes a Dataset once
    every byte is in and the file validates. Belongs to the user who started it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=255)
    size = models.BigIntegerField()
    received = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.filename} ({self.received} of {self.size} bytes)"

    @property
    def part_path(self):
        return settings.LAB_DATA_DIR / "uploads" / f"{self.id}.part"
