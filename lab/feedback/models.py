"""Campaigns, their comparison items, who was given which item, and the votes.

Votes are stored canonically: `label` says which of the item's responses (a or b) won, whatever side
the annotator saw it on; `shown_left` records which response was on the left. Assignment under
concurrency is in assignment.py; the invariants the database itself holds are the constraints below.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from lab.accounts.models import Team

MAX_ID = 2**63 - 1
"""The largest primary key (a 64-bit integer, BigAutoField): an id beyond it names nothing, and the
database cannot even be asked about it (OverflowError)."""
MAX_OVERLAP = 50
"""Annotators per item at most, in every form and the API (the column is a small integer)."""


class Label(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


DECISIVE = (Label.A, Label.B)


class Strength(models.TextChoices):
    SLIGHTLY = "slightly", "slightly better"
    CLEARLY = "clearly", "clearly better"
    MUCH = "much", "much better"


class Side(models.TextChoices):
    A = "a", "a"
    B = "b", "b"


class CampaignQuerySet(models.QuerySet):
    def open(self) -> "CampaignQuerySet":
        return self.filter(status=Campaign.Status.OPEN)


class Campaign(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    guidelines = models.TextField(blank=True, help_text="Markdown, shown to annotators above every item.")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="feedback_campaigns", blank=True)
    overlap = models.PositiveSmallIntegerField(default=2, help_text="How many annotators judge each item.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    source_run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="campaigns")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_at_least_one")]

    def __str__(self) -> str:
        return self.name


class ComparisonItem(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    prompt = models.TextField()
    response_a = models.TextField()
    response_b = models.TextField()
    # Who wrote each response (a checkpoint's label); never shown to annotators.
    model_a = models.CharField(max_length=200, blank=True)
    model_b = models.CharField(max_length=200, blank=True)
    artifact_a = models.ForeignKey("runs.Artifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    artifact_b = models.ForeignKey("runs.Artifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    gold = models.CharField(max_length=10, choices=Label.choices, blank=True, help_text="The known answer, if any.")
    vote_count = models.PositiveIntegerField(default=0, editable=False, help_text="How many votes the item has.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        # The search for an item to hand out walks a campaign's items in order and passes the ones
        # with `overlap` votes on the count kept here, without counting their assignments.
        indexes = [models.Index(fields=["campaign", "id"], name="item_in_campaign_order")]

    def __str__(self) -> str:
        return f"item {self.pk} of {self.campaign_id}"


class Assignment(models.Model):
    """An item given to an annotator. It holds a place in the item's overlap while it is done, or
    open and not yet expired; an expired open assignment gives its place back to the pool."""

    class Order(models.TextChoices):
        A_LEFT = "ab", "a on the left"
        B_LEFT = "ba", "b on the left"

    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback_assignments")
    shown_order = models.CharField(max_length=2, choices=Order.choices)
    taken_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    done = models.BooleanField(default=False)
    skipped = models.BooleanField(default=False)

    class Meta:
        ordering = ["taken_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_assignment_per_item_and_annotator"),
            models.CheckConstraint(condition=~(Q(done=True) & Q(skipped=True)), name="assignment_done_or_skipped"),
        ]
        indexes = [models.Index(fields=["annotator", "done", "skipped"])]

    def __str__(self) -> str:
        return f"item {self.item_id} for {self.annotator_id}"

    @property
    def left(self) -> str:
        return self.shown_order[0]

    def holds_a_place(self, now) -> bool:
        """Done, or open and not expired (assignment.py counts the same in SQL)."""
        return self.done or (not self.skipped and self.expires_at > now)

    def canonical(self, shown_choice: str) -> str:
        """The canonical label of a choice made on the page (left/right/tie/both_bad)."""
        if shown_choice == "left":
            return self.shown_order[0]
        if shown_choice == "right":
            return self.shown_order[1]
        return shown_choice


class Vote(models.Model):
    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="votes")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback_votes")
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="vote")
    label = models.CharField(max_length=10, choices=Label.choices)
    strength = models.CharField(max_length=10, choices=Strength.choices, blank=True)
    rationale = models.TextField(blank=True)
    shown_left = models.CharField(max_length=1, choices=Side.choices, help_text="The response shown on the left.")
    seconds = models.FloatField(help_text="Time from the item appearing to the vote.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="one_vote_per_item_and_annotator"),
            models.CheckConstraint(condition=Q(seconds__gte=0), name="vote_seconds_not_negative"),
            models.CheckConstraint(condition=Q(strength="") | Q(label__in=DECISIVE), name="strength_only_for_a_winner"),
        ]

    def __str__(self) -> str:
        return f"{self.label} on item {self.item_id} by {self.annotator_id}"

    @property
    def left_won(self) -> bool | None:
        """Whether the response on the left won; None for a tie or both bad."""
        if self.label not in DECISIVE:
            return None
        return self.label == self.shown_left


@receiver(post_delete, sender=Vote)
def _vote_deleted(sender, instance: Vote, **kwargs) -> None:
    """A vote deleted (with its annotator's account) gives its place on the item back.
    record_vote counts the votes up."""
    ComparisonItem.objects.filter(pk=instance.item_id).update(vote_count=F("vote_count") - 1)


class Judge(models.Model):
    """A model that labelled a campaign's pairs on a worker (one judge run): an annotator of the
    campaign that is not a person. Its votes are JudgeVotes, apart from the people's: they hold no
    place in an item's overlap, and the dashboard and the export name them as a judge's."""

    class Method(models.TextChoices):
        RUBRIC = "rubric", "checkpoint reading the guidelines"
        REWARD = "reward", "reward model"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judges")
    run = models.OneToOneField("runs.Run", null=True, on_delete=models.SET_NULL, related_name="judge")
    artifact = models.ForeignKey("runs.Artifact", null=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=250, help_text="How the dashboard and the export name this annotator.")
    method = models.CharField(max_length=10, choices=Method.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.name


class JudgeVote(models.Model):
    """A judge's canonical label of an item, with its raw answers (training/judge.py): for a
    rubric judge, the answer of each order it was shown; for a reward model, both scores."""

    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="votes")
    item = models.ForeignKey(ComparisonItem, on_delete=models.CASCADE, related_name="judge_votes")
    label = models.CharField(max_length=10, choices=Label.choices)
    answers = models.JSONField(default=dict)

    class Meta:
        ordering = ["item_id", "pk"]
        constraints = [models.UniqueConstraint(fields=["judge", "item"], name="one_judge_vote_per_item")]

    def __str__(self) -> str:
        return f"{self.label} on item {self.item_id} by {self.judge}"
