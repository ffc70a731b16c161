from django.conf import settings
from django.db import models

from lab.accounts.models import Team


class CorpusQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> "CorpusQuerySet":
        return self.filter(team=team)


class Corpus(models.Model):
    class Format(models.TextChoices):
        TXT = "txt", "Plain text (documents split by blank lines)"
        JSONL = "jsonl", "JSON lines with a text field"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="corpora")
    name = models.CharField(max_length=200)
    format = models.CharField(max_length=10, choices=Format.choices)
    # Relative to LAB_DATA_DIR, so web and workers on other machines find the same file.
    path = models.CharField(max_length=500)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    n_documents = models.IntegerField()
    n_lines = models.IntegerField()
    preview = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CorpusQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "corpora"

    def __str__(self) -> str:
        return self.name

    @property
    def absolute_path(self):
        return settings.LAB_DATA_DIR / self.path
