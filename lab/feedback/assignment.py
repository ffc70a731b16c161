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
IMMEDIATE (lab/settings.py), which serialises writers: the row locks are left out there and the
same code stays correct, only without the parallelism.

Every annotator's judgement runs through here, so the statements are written out in SQL: building
them with the ORM cost ~2.5 ms of Python each, several times what the database spends on them
(bench/feedback.py measures the whole path).
"""

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from lab.feedback.models import MAX_ID, Assignment, Campaign, ComparisonItem, Label, Strength, Vote
from lab.feedback.streaming import announce_change

ASSIGNMENT_SECONDS = float(getattr(settings, "LAB_FEEDBACK_ASSIGNMENT_SECONDS", 600))
"""How long an item stays reserved for an annotator who took it but has not voted."""
QUEUE_DEPTH = 2
"""The item on screen and the one fetched ahead, so the next appears without a round trip."""
CHOICES = ("left", "right", Label.TIE.value, Label.BOTH_BAD.value)

_HOLDS_A_PLACE = "(a.done OR (NOT a.skipped AND a.expires_at > %s))"  # Assignment.holds_a_place
_QUEUE = """
    SELECT a.*, i.prompt AS item_prompt, i.response_a AS item_response_a, i.response_b AS item_response_b
    FROM feedback_assignment a JOIN feedback_comparisonitem i ON i.id = a.item_id
    WHERE i.campaign_id = %s AND a.annotator_id = %s AND NOT a.done AND NOT a.skipped AND a.expires_at > %s
    ORDER BY a.taken_at, a.id"""
_OPEN_ITEMS = """
    SELECT id FROM feedback_comparisonitem WHERE campaign_id = %s AND vote_count < %s AND id > %s
    ORDER BY id LIMIT %s"""
_CANDIDATE = f"""
    SELECT i.id, i.prompt, i.response_a, i.response_b FROM feedback_comparisonitem i
    WHERE i.id IN ({{ids}})
      AND NOT EXISTS (SELECT 1 FROM feedback_assignment a WHERE a.item_id = i.id AND a.annotator_id = %s
                      AND (a.done OR a.skipped OR a.expires_at > %s))
      AND (SELECT COUNT(*) FROM feedback_assignment a WHERE a.item_id = i.id AND {_HOLDS_A_PLACE}) < %s
    ORDER BY i.id LIMIT 1 {{lock}}"""
WINDOW = 64
"""How many open items (fewer votes than the overlap) one look for an item to take weighs. Each is
checked against the annotator's own assignments and counted, so a take costs the same whatever the
campaign's progress, and whatever the query planner believes of tables it has no statistics of yet
(a new campaign's): one free-form search had the planner check all 1,200 items of the benchmark's
campaign before it sorted them, 9 ms a take."""


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


def _lock(*, skip_locked: bool = False, of: tuple[str, ...] = ()) -> str:
    """A row lock that does not block inserts referring to the row, where the database has row
    locks (PostgreSQL); nothing on SQLite."""
    if not connection.features.has_select_for_update:
        return ""
    return connection.ops.for_update_sql(skip_locked=skip_locked, of=of, no_key=True)


def _at(moment):
    """A timestamp as the database stores it (SQLite keeps text)."""
    return connection.ops.adapt_datetimefield_value(moment)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _with_item(assignment: Assignment) -> Assignment:
    """The assignment with its item's text, read by the same statement."""
    assignment.item = ComparisonItem(pk=assignment.item_id, prompt=assignment.item_prompt,
                                     response_a=assignment.item_response_a, response_b=assignment.item_response_b)
    return assignment


def open_queue(campaign: Campaign, annotator, now=None) -> list[Assignment]:
    now = now or timezone.now()
    return [_with_item(a) for a in Assignment.objects.raw(_QUEUE, [campaign.pk, annotator.pk, _at(now)])]


def take_items(campaign: Campaign, annotator, depth: int = QUEUE_DEPTH) -> list[Assignment]:
    """The annotator's queue, topped up to `depth` open assignments, oldest first. Empty when the
    campaign is not open or nothing is left for them. Each item is taken in its own transaction,
    so a transaction never holds more than one item's lock (two would risk a deadlock)."""
    if campaign.status != Campaign.Status.OPEN:
        return []
    queue = open_queue(campaign, annotator)
    if len(queue) >= depth:  # the common case: no lock taken
        return queue
    return top_up(campaign, annotator, depth)


def top_up(campaign: Campaign, annotator, depth: int = QUEUE_DEPTH) -> list[Assignment]:
    """take_items without its first, lock-free look at the queue: for a caller that knows the queue
    is short (a vote just took an item out of it)."""
    if campaign.status != Campaign.Status.OPEN:
        return []
    full: set[int] = set()
    queue = None
    while queue is None or len(queue) < depth:
        with transaction.atomic():
            # One annotator's requests (tabs, prefetches) run one at a time: without this, two tabs
            # would each top up the queue. NO KEY UPDATE, so a vote being stored (whose row refers
            # to the user) is not blocked by it.
            _fetch(f"SELECT id FROM auth_user WHERE id = %s {_lock()}", [annotator.pk])
            now = timezone.now()
            if queue is None:  # read under the lock; later rounds add what they took themselves
                queue = open_queue(campaign, annotator, now)
                if len(queue) >= depth:
                    break
            taken = _take_one(campaign, annotator, now, full)
            if taken is None:
                break
            queue.append(taken)
    return queue


def _candidate(campaign: Campaign, annotator, now, full: set[int]) -> ComparisonItem | None:
    """The first item the annotator may take, locked; looked for a window of open items at a time."""
    after = 0
    while True:
        window = [pk for (pk,) in _fetch(_OPEN_ITEMS, [campaign.pk, campaign.overlap, after, WINDOW])]
        ids = [pk for pk in window if pk not in full]
        # Skip the items others are taking right now; if those were all there is, wait for one.
        for skip_locked in (True, False) if ids else ():
            sql = _CANDIDATE.format(ids=", ".join(["%s"] * len(ids)), lock=_lock(skip_locked=skip_locked, of=("i",)))
            rows = _fetch(sql, [*ids, annotator.pk, _at(now), _at(now), campaign.overlap])
            if rows:
                pk, prompt, response_a, response_b = rows[0]
                return ComparisonItem(pk=pk, campaign_id=campaign.pk, prompt=prompt, response_a=response_a,
                                      response_b=response_b)
        if len(window) < WINDOW:
            return None
        after = window[-1]


def _take_one(campaign: Campaign, annotator, now, full: set[int]) -> Assignment | None:
    while True:
        item = _candidate(campaign, annotator, now, full)
        if item is None:
            return None
        # Counted again under the item's lock: the candidate was chosen from a snapshot taken before it.
        placed = list(Assignment.objects.raw("SELECT * FROM feedback_assignment WHERE item_id = %s", [item.pk]))
        own = next((a for a in placed if a.annotator_id == annotator.pk), None)
        holders = sum(1 for a in placed if a.holds_a_place(now))
        if holders >= campaign.overlap or (own is not None and (own.done or own.skipped or own.expires_at > now)):
            full.add(item.pk)
            continue
        expires_at = now + timezone.timedelta(seconds=ASSIGNMENT_SECONDS)
        if own is None:  # no other request of this annotator runs now (their user row is locked)
            own = Assignment(item=item, annotator_id=annotator.pk, taken_at=now, expires_at=expires_at,
                             shown_order=secrets.choice(Assignment.Order.values))
            own.save(force_insert=True)
        else:  # their own abandoned assignment, taken up again with the order it had
            own.taken_at, own.expires_at, own.item = now, expires_at, item
            own.save(update_fields=["taken_at", "expires_at"])
        return own


def done_count(campaign: Campaign, annotator) -> int:
    """How many of the campaign's items the annotator has judged."""
    return _fetch("""SELECT COUNT(*) FROM feedback_vote v JOIN feedback_comparisonitem i ON i.id = v.item_id
                     WHERE v.annotator_id = %s AND i.campaign_id = %s""", [annotator.pk, campaign.pk])[0][0]


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
    item_id = _item_id(item_id)
    with transaction.atomic():
        if not _fetch(f"SELECT id FROM feedback_comparisonitem WHERE id = %s AND campaign_id = %s {_lock()}",
                      [item_id, campaign.pk]):
            raise NotAssigned()
        assignment = next(iter(Assignment.objects.raw(
            f"SELECT * FROM feedback_assignment WHERE item_id = %s AND annotator_id = %s {_lock()}",
            [item_id, annotator.pk])), None)
        if assignment is None or assignment.skipped:
            raise NotAssigned()
        if assignment.done:
            return VoteResult(Vote.objects.get(assignment=assignment), duplicate=True)
        if campaign.status == Campaign.Status.CLOSED:
            raise CampaignClosed()
        now = timezone.now()
        if assignment.expires_at <= now:
            others = _fetch(f"SELECT COUNT(*) FROM feedback_assignment a WHERE a.item_id = %s AND a.id <> %s"
                            f" AND {_HOLDS_A_PLACE}", [item_id, assignment.pk, _at(now)])[0][0]
            if others >= campaign.overlap:
                raise NoLongerHeld()
        # The page measures the time; it cannot claim more than has passed since the item was taken.
        elapsed = (now - assignment.taken_at).total_seconds()
        vote = Vote(item_id=item_id, annotator_id=annotator.pk, assignment=assignment,
                    label=assignment.canonical(choice), strength=strength, rationale=rationale.strip()[:5000],
                    shown_left=assignment.left, seconds=max(0.0, min(float(seconds or 0.0), elapsed)))
        vote.save(force_insert=True)
        _fetch("UPDATE feedback_assignment SET done = %s WHERE id = %s", [True, assignment.pk])
        _fetch("UPDATE feedback_comparisonitem SET vote_count = vote_count + 1 WHERE id = %s", [item_id])
        _announce(campaign)
    return VoteResult(vote, duplicate=False)


def skip_item(campaign: Campaign, annotator, item_id) -> None:
    """Give the item back to the pool; this annotator will not be given it again."""
    item_id = _item_id(item_id)
    with transaction.atomic():
        skipped = Assignment.objects.filter(item_id=item_id, item__campaign=campaign, annotator=annotator,
                                            done=False, skipped=False).update(skipped=True)
        if not skipped:
            raise NotAssigned()
        _announce(campaign)


def _item_id(item_id) -> int:
    """An item id the statements can take; anything else (not an integer, past 64 bits) is in no queue."""
    try:
        item_id = int(item_id)
    except (TypeError, ValueError):
        raise NotAssigned() from None
    if not 1 <= item_id <= MAX_ID:
        raise NotAssigned()
    return item_id


def _announce(campaign: Campaign) -> None:
    transaction.on_commit(lambda: announce_change(campaign.pk))
