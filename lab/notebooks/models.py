from django.conf import settings
from django.db import models

from lab.accounts.models import Team


class Notebook(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notebooks")
    title = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title


class Cell(models.Model):
    class Kind(models.TextChoices):
        NOTE = "note", "Note"
        CORPUS = "corpus", "Corpus"
        CLEAN = "clean", "Clean"
        TOKENIZER = "tokenizer", "Tokenizer"
        PRETRAIN = "pretrain", "Pretrain"
        MODEL = "model", "Base model"
        SFT = "sft", "Supervised fine-tuning"
        CLASSIFY = "classify", "Classification fine-tuning"
        REWARD = "reward", "Reward model"
        DPO = "dpo", "Preference tuning (DPO)"
        RL = "rl", "Reinforcement learning (GRPO)"
        GENERATE = "generate", "Generate responses"
        ANNOTATE = "annotate", "Human feedback"
        EVALUATE = "evaluate", "Evaluate"
        PLAYGROUND = "playground", "Playground"

    notebook = models.ForeignKey(Notebook, on_delete=models.CASCADE, related_name="cells")
    position = models.IntegerField(default=0)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    title = models.CharField(max_length=200, blank=True)
    # What the user typed in the cell's form; inputs name upstream cells (`corpus_cell`, ...).
    config = models.JSONField(default=dict)
    # The run whose output is this cell's output; earlier runs stay in `runs` as history.
    current_run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.title or f"{self.get_kind_display()} cell"

    @property
    def display_title(self) -> str:
        return str(self)
