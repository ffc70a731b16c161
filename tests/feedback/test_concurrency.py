"""20 annotators (five of them with a second tab) judging at once, each thread on its own database
connection: no vote lost, no item over its overlap, nobody judging an item twice. Against real
PostgreSQL when DATABASE_URL is set (row locks, SKIP LOCKED); on SQLite, serialised writers."""

import random
import threading
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Count

from lab.accounts.actions import add_member, create_user
from lab.accounts.models import Role
from lab.feedback.assignment import NoLongerHeld, record_vote, take_items
from lab.feedback.models import Assignment, Vote
from tests.feedback.builders import campaign_with_items

ANNOTATORS = 20
SECOND_TABS = 5
ITEMS = 24
OVERLAP = 3


def _judge(campaign, user, barrier, stored: list, duplicates: list, errors: list) -> None:
    rng = random.Random(user.pk)
    try:
        barrier.wait(timeout=60)
        while queue := take_items(campaign, user):
            entry = rng.choice(queue)  # a tab may answer either item on screen
            try:
                result = record_vote(campaign, user, entry.item_id, rng.choice(["left", "right", "tie", "both_bad"]),
                                     seconds=rng.uniform(1, 9))
            except NoLongerHeld:  # cannot happen without expiry; counted as an error below
                errors.append(f"{user.username}: place lost")
                continue
            (duplicates if result.duplicate else stored).append((user.pk, entry.item_id))
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(f"{user.username}: {e!r}")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_it_holds_its_invariants_with_20_annotators_at_once(cast):
    annotators = [create_user(f"annotator{i:02d}", None) for i in range(ANNOTATORS)]  # no password: no hashing
    for user in annotators:
        add_member(cast.team, user, Role.ANNOTATOR)
    campaign = campaign_with_items(cast.team, cast.alice, annotators, n_items=ITEMS, overlap=OVERLAP)
    tabs = annotators + annotators[:SECOND_TABS]
    barrier = threading.Barrier(len(tabs))
    stored, duplicates, errors = [], [], []
    threads = [threading.Thread(target=_judge, args=(campaign, user, barrier, stored, duplicates, errors)) for user in tabs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    votes = list(Vote.objects.filter(item__campaign=campaign).values_list("annotator_id", "item_id"))
    assert sorted(votes) == sorted(stored)  # every vote acknowledged is stored, and nothing else
    assert len(votes) == ITEMS * OVERLAP  # every item filled to its overlap, none beyond
    assert Counter(item for _, item in votes) == {item: OVERLAP for item in campaign.items.values_list("pk", flat=True)}
    assert set(campaign.items.values_list("vote_count", flat=True)) == {OVERLAP}  # the count kept under the lock
    assert len(set(votes)) == len(votes)
    held = Assignment.objects.filter(item__campaign=campaign).values("item").annotate(n=Count("pk"))
    assert max(row["n"] for row in held) <= OVERLAP
    assert set(duplicates) <= set(stored)  # a second tab's vote on the same item was not counted again
