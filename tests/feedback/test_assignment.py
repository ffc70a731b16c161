"""Handing out items: overlap, one judgement per annotator, abandoned items, two tabs, skips,
canonical votes, and refusals that store nothing."""

import pytest
from django.db import connection
from django.utils import timezone

from lab.feedback import assignment as assignment_module
from lab.feedback.actions import ANALYZE_AFTER, add_items
from lab.feedback.assignment import NoLongerHeld, NotAssigned, record_vote, skip_item, take_items
from lab.feedback.models import Assignment, Vote
from tests.feedback.builders import campaign_with_items, pair

pytestmark = pytest.mark.django_db


def test_it_gives_no_item_to_more_annotators_than_its_overlap(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice, cast.bob, cast.carol], n_items=3, overlap=2)

    queues = {user.username: [a.item_id for a in take_items(campaign, user)] for user in (cast.alice, cast.carol, cast.bob)}

    first, second, third = campaign.items.values_list("pk", flat=True)
    assert queues == {"alice": [first, second], "carol": [first, second], "bob": [third]}


def test_it_gives_two_tabs_of_one_annotator_the_same_items(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob])

    one_tab = take_items(campaign, cast.bob)
    other_tab = take_items(campaign, cast.bob)

    assert [a.pk for a in one_tab] == [a.pk for a in other_tab]
    assert Assignment.objects.filter(annotator=cast.bob).count() == 2


def test_it_counts_a_vote_sent_from_two_tabs_once(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob])
    item = take_items(campaign, cast.bob)[0].item

    first = record_vote(campaign, cast.bob, item.pk, "left", seconds=4)
    second = record_vote(campaign, cast.bob, item.pk, "right", seconds=5)

    assert not first.duplicate and second.duplicate
    assert second.vote.pk == first.vote.pk
    assert Vote.objects.filter(item=item).count() == 1


def test_it_stores_the_vote_canonically_with_the_side_shown(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob])
    assignment = take_items(campaign, cast.bob)[0]
    Assignment.objects.filter(pk=assignment.pk).update(shown_order="ba")  # b was on the left

    vote = record_vote(campaign, cast.bob, assignment.item_id, "left", strength="clearly", seconds=3).vote

    assert (vote.label, vote.shown_left, vote.strength, vote.left_won) == ("b", "b", "clearly", True)


def test_it_returns_an_abandoned_item_to_the_pool_after_the_timeout(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob, cast.carol], n_items=1, overlap=1)
    taken = take_items(campaign, cast.bob)[0]
    assert take_items(campaign, cast.carol) == []  # bob holds its only place

    Assignment.objects.filter(pk=taken.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    reclaimed = take_items(campaign, cast.carol)

    assert [a.item_id for a in reclaimed] == [taken.item_id]
    with pytest.raises(NoLongerHeld):  # bob comes back too late: the place is carol's now
        record_vote(campaign, cast.bob, taken.item_id, "left")
    record_vote(campaign, cast.carol, taken.item_id, "tie")
    assert list(Vote.objects.values_list("annotator__username", flat=True)) == ["carol"]


def test_it_takes_a_late_vote_when_nobody_else_took_the_place(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1, overlap=1)
    taken = take_items(campaign, cast.bob)[0]
    Assignment.objects.filter(pk=taken.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))

    assert not record_vote(campaign, cast.bob, taken.item_id, "right").duplicate
    assert take_items(campaign, cast.bob) == []


def test_it_never_gives_a_skipped_item_again_but_gives_it_to_others(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob, cast.carol], n_items=2, overlap=1)
    first = take_items(campaign, cast.bob)[0].item_id

    skip_item(campaign, cast.bob, first)

    assert first not in [a.item_id for a in take_items(campaign, cast.bob)]
    assert first in [a.item_id for a in take_items(campaign, cast.carol)]


def test_it_refuses_a_vote_on_an_item_not_assigned_and_stores_nothing(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob, cast.carol], n_items=4, overlap=1)
    other = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1, name="Other")
    carols = take_items(campaign, cast.carol, depth=1)[0].item_id
    take_items(campaign, cast.bob)
    never_taken = list(campaign.items.filter(assignments__isnull=True).values_list("pk", flat=True))
    assert len(never_taken) == 1
    other_item = take_items(other, cast.bob)[0].item_id

    for item_id in (carols, *never_taken, other_item, "nonsense", 10**9):
        with pytest.raises(NotAssigned):
            record_vote(campaign, cast.bob, item_id, "left")
    assert Vote.objects.count() == 0


def test_it_keeps_each_items_vote_count_and_a_deleted_account_gives_its_place_back(cast):
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice, cast.bob, cast.carol], n_items=1, overlap=2)
    item = campaign.items.get()
    for user in (cast.bob, cast.carol):
        assert [a.item_id for a in take_items(campaign, user)] == [item.pk]
        record_vote(campaign, user, item.pk, "left")
    item.refresh_from_db()
    assert item.vote_count == 2 and take_items(campaign, cast.alice) == []  # full

    cast.bob.delete()

    item.refresh_from_db()
    assert item.vote_count == 1
    assert [a.item_id for a in take_items(campaign, cast.alice)] == [item.pk]


def test_it_finds_a_free_item_past_a_window_of_ones_it_may_not_take(cast, monkeypatch):
    monkeypatch.setattr(assignment_module, "WINDOW", 2)
    campaign = campaign_with_items(cast.team, cast.alice, [cast.alice, cast.bob, cast.carol], n_items=5, overlap=3)
    first_four = list(campaign.items.values_list("pk", flat=True))[:4]
    for _ in range(2):  # bob judges the first four: still open for others, closed to him
        for assignment in take_items(campaign, cast.bob):
            record_vote(campaign, cast.bob, assignment.item_id, "left")
    assert sorted(Vote.objects.filter(annotator=cast.bob).values_list("item_id", flat=True)) == first_four

    assert [a.item_id for a in take_items(campaign, cast.bob)] == [campaign.items.last().pk]


def test_it_renews_the_databases_statistics_of_items_after_a_bulk_add(cast):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    campaign = campaign_with_items(cast.team, cast.alice, [cast.bob], n_items=1)

    def estimated_items() -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'feedback_comparisonitem'")
            return cursor.fetchone()[0]

    before = estimated_items()
    add_items(campaign, [pair(n) for n in range(ANALYZE_AFTER)])

    assert before < ANALYZE_AFTER <= estimated_items()  # the planner knows the campaign is not a handful
