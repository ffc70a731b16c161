"""Handing items to annotators and taking their votes, correct under concurrency.

Invariants (tests/feedback/test_concurrency.py checks them with 20 annotators at once):
- an item is held by at most `overlap` assignments, where an assignment holds a place while it is
  done, or open and not expired; an abandoned (expired) assignment gives its place back;
- an annotator is given an item at most once (a unique constraint), and votes on it at most once
  (another one); a skipped item is never given to them again;
- an annotator's open assignments are their queue: two tabs asking at once get the same items.

How: taking an item locks the annotator's user row (so one annotator's requests run one at a time),
then locks one candidate item row with SKIP LOCKED (so concurrent annotators spread over different
items instead of queueing on one), re-counts the item's holders under that lock, and only then
creates the assignment. A vote locks the item row too, so a late vote on an expired assignment and a
new taker of its place cannot both win. On SQLite the lab opens every transaction with BEGIN
IMMEDIATE (lab/settings.py), which serialises writers: select_for_update is a no-op there and the
same code stays correct, only without the parallelism.
"""

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from lab.feedback.models import Assignment, Campaign, ComparisonItem, Label, Strength, Vote
from lab.feedback.streaming import announce_change

ASSIGNMENT_SECONDS = float(getattr(settings, "LAB_FEEDBACK_ASSIGNMENT_SECONDS", 600))
"""How long an item stays reserved for an annotator who took it but has not voted."""
QUEUE_DEPTH = 2
"""The item on screen and the one fetched ahead, so the next appears without a round trip."""
CANDIDATES = 50
"""Candidate items read per attempt before locking one of them."""
CHOICES = ("left", "right", Label.TIE.value, Label.BOTH_BAD.value)


class NotAssigned(Exception):
    """The item is not in this annotator's queue of this campaign (a 404 for the caller)."""


class NoLongerHeld(Exception):
    """The assignment expired and its place went to other annotators (a 409 for the caller)."""


class CampaignClosed(Exception):
    """The campaign takes no more votes."""


@dataclass
class VoteResult:
    vote: Vote
    duplicate: bool
    """True when this annotator had already voted on the item (another tab): nothing new stored."""


def holds_a_place(now) -> Q:
    return Q(done=True) | Q(skipped=False, expires_at__gt=now)


def open_queue(campaign: Campaign, annotator, now=None) -> list[Assignment]:
    now = now or timezone.now()
    return list(
        Assignment.objects.filter(item__campaign=campaign, annotator=annotator, done=False, skipped=False,
                                  expires_at__gt=now).select_related("item").order_by("taken_at", "pk")
    )


def take_items(campaign: Campaign, annotator, depth: int = QUEUE_DEPTH) -> list[Assignment]:
    """The annotator's queue, topped up to `depth` open assignments, oldest first. Empty when the
    campaign is not open or nothing is left for them. Each item is taken in its own transaction,
    so a transaction never holds more than one item's lock (two would risk a deadlock)."""
    queue = open_queue(campaign, annotator)
    if campaign.status == Campaign.Status.OPEN and len(queue) >= depth:  # the common case: no lock taken
        return queue
    full: set[int] = set()
    while True:
        with transaction.atomic():
            # One annotator's requests (tabs, prefetches) run one at a time: without this, two tabs
            # would each top up the queue. NO KEY UPDATE, so a vote being stored (whose row refers
            # to the user) is not blocked by it.
            list(get_user_model().objects.select_for_update(no_key=True).filter(pk=annotator.pk).values_list("pk"))
            if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.OPEN).exists():
                return []
            now = timezone.now()
            queue = open_queue(campaign, annotator, now)
            if len(queue) >= depth:
                return queue
            taken = _take_one(campaign, annotator, now, full)
            if taken is None:
                return queue


def _take_one(campaign: Campaign, annotator, now, full: set[int]) -> Assignment | None:
    mine = Assignment.objects.filter(item__campaign=campaign, annotator=annotator).filter(
        Q(done=True) | Q(skipped=True) | Q(expires_at__gt=now))
    holders = (Assignment.objects.filter(item=OuterRef("pk")).filter(holds_a_place(now)).order_by()
               .values("item").annotate(n=Count("pk")).values("n"))
    candidates = (ComparisonItem.objects.filter(campaign=campaign).exclude(pk__in=mine.values("item"))
                  .annotate(holders=Coalesce(Subquery(holders, output_field=IntegerField()), 0))
                  .filter(holders__lt=campaign.overlap))
    while True:
        ids = list(candidates.exclude(pk__in=full).order_by("pk").values_list("pk", flat=True)[:CANDIDATES])
        if not ids:
            return None
        item = (ComparisonItem.objects.select_for_update(skip_locked=True, no_key=True).filter(pk__in=ids)
                .order_by("pk").first())
        if item is None:  # every candidate is being taken by someone right now: wait for the first
            item = ComparisonItem.objects.select_for_update(no_key=True).get(pk=ids[0])
        # Counted again under the item's lock: the candidate query ran before it.
        if (Assignment.objects.filter(item=item).filter(holds_a_place(now)).count() >= campaign.overlap
                or mine.filter(item=item).exists()):
            full.add(item.pk)
            continue
        assignment, created = Assignment.objects.get_or_create(
            item=item, annotator=annotator,
            defaults={"shown_order": secrets.choice(Assignment.Order.values), "taken_at": now,
                      "expires_at": now + timezone.timedelta(seconds=ASSIGNMENT_SECONDS)},
        )
        if not created:  # their own abandoned assignment, taken up again with the order it had
            assignment.taken_at = now
            assignment.expires_at = now + timezone.timedelta(seconds=ASSIGNMENT_SECONDS)
            assignment.save(update_fields=["taken_at", "expires_at"])
        assignment.item = item
        return assignment


def record_vote(campaign: Campaign, annotator, item_id, choice: str, *, strength: str = "", rationale: str = "",
                seconds: float = 0.0) -> VoteResult:
    """Store the annotator's judgement of an item of their queue. `choice` is what they pressed:
    left, right, tie or both_bad; it is stored canonically (a/b) with the side shown on the left.
    A second vote on the same item (another tab) stores nothing and returns the first.
    Raises NotAssigned, NoLongerHeld, CampaignClosed, or ValueError for a bad choice or strength."""
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}")
    if strength and strength not in Strength.values:
        raise ValueError(f"strength must be one of {', '.join(Strength.values)}")
    if strength and choice not in ("left", "right"):
        raise ValueError("strength goes with a winner (left or right), not with a tie or both bad")
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise NotAssigned() from None
    with transaction.atomic():
        item = ComparisonItem.objects.select_for_update(no_key=True).filter(pk=item_id, campaign=campaign).first()
        if item is None:
            raise NotAssigned()
        assignment = Assignment.objects.select_for_update(no_key=True).filter(item=item, annotator=annotator).first()
        if assignment is None or assignment.skipped:
            raise NotAssigned()
        if assignment.done:
            return VoteResult(Vote.objects.get(assignment=assignment), duplicate=True)
        if not Campaign.objects.filter(pk=campaign.pk).exclude(status=Campaign.Status.CLOSED).exists():
            raise CampaignClosed()
        now = timezone.now()
        if assignment.expires_at <= now:
            others = Assignment.objects.filter(item=item).exclude(pk=assignment.pk).filter(holds_a_place(now)).count()
            if others >= campaign.overlap:
                raise NoLongerHeld()
        # The page measures the time; it cannot claim more than has passed since the item was taken.
        elapsed = (now - assignment.taken_at).total_seconds()
        vote = Vote.objects.create(
            item=item, annotator=annotator, assignment=assignment, label=assignment.canonical(choice),
            strength=strength, rationale=rationale.strip()[:5000], shown_left=assignment.left,
            seconds=max(0.0, min(float(seconds or 0.0), elapsed)),
        )
        Assignment.objects.filter(pk=assignment.pk).update(done=True)
        _announce(campaign)
    return VoteResult(vote, duplicate=False)


def skip_item(campaign: Campaign, annotator, item_id) -> None:
    """Give the item back to the pool; this annotator will not be given it again."""
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise NotAssigned() from None
    with transaction.atomic():
        skipped = Assignment.objects.filter(item_id=item_id, item__campaign=campaign, annotator=annotator,
                                            done=False, skipped=False).update(skipped=True)
        if not skipped:
            raise NotAssigned()
        _announce(campaign)


def _announce(campaign: Campaign) -> None:
    transaction.on_commit(lambda: announce_change(campaign.pk))
