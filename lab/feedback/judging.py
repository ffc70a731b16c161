"""What an annotator asks of a campaign, the same over both lines to it: the annotator page's
websocket (lab/feedback/consumers.py AnnotatorConsumer) and the REST API (lab/feedback/api.py).
Each answer is a Reply: an HTTP status and a JSON body, so the two lines refuse the same things in
the same words."""

from dataclasses import dataclass

from rest_framework import serializers

from lab.feedback import assignment
from lab.feedback.models import MAX_ID, Campaign, Strength


@dataclass
class Reply:
    status: int
    body: dict


def item_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The item's id, as the queue gives it.")


class VoteSerializer(serializers.Serializer):
    item = item_field()
    choice = serializers.ChoiceField(choices=assignment.CHOICES, help_text="As shown: left, right, tie or both_bad.")
    strength = serializers.ChoiceField(choices=Strength.choices, required=False, allow_blank=True)
    rationale = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    seconds = serializers.FloatField(required=False, min_value=0, default=0.0)


class SkipSerializer(serializers.Serializer):
    item = item_field()


NOT_FOUND = Reply(404, {"detail": "not found"})
"""The campaign is not there for this annotator (never theirs, or they were taken off it)."""
NOT_IN_QUEUE = Reply(404, {"detail": "this item is not in your queue"})


def queue_payload(queue: list) -> list[dict]:
    """The annotator's view of their assignments: the two responses by side, nothing else."""
    return [{"item": a.item.pk, "prompt": a.item.prompt,
             "left": getattr(a.item, f"response_{a.shown_order[0]}"),
             "right": getattr(a.item, f"response_{a.shown_order[1]}"),
             "expires_at": a.expires_at} for a in queue]


def queue(campaign: Campaign, annotator, *, after_vote: bool = False) -> dict:
    """The annotator's queue (the item to judge and the one after it) and how many they have judged."""
    take = assignment.top_up if after_vote else assignment.take_items
    return {"queue": queue_payload(take(campaign, annotator)), "done": assignment.done_count(campaign, annotator)}


def next_items(campaign: Campaign, annotator, data=None) -> Reply:
    return Reply(200, queue(campaign, annotator))


def vote(campaign: Campaign, annotator, data) -> Reply:
    """Store a judgement (VoteSerializer's fields); the reply brings the queue after it."""
    serializer = VoteSerializer(data=data)
    if not serializer.is_valid():
        return Reply(400, serializer.errors)
    v = serializer.validated_data
    try:
        result = assignment.record_vote(campaign, annotator, v["item"], v["choice"], strength=v.get("strength", ""),
                                        rationale=v.get("rationale", ""), seconds=v["seconds"])
    except assignment.NotAssigned:
        return NOT_IN_QUEUE
    except (assignment.NoLongerHeld, assignment.CampaignClosed) as e:
        return Reply(409, {"error": _refusal(e), **queue(campaign, annotator)})
    except ValueError as e:
        return Reply(400, {"choice": [str(e)]})
    return Reply(200 if result.duplicate else 201, {"duplicate": result.duplicate, "vote": result.vote.pk,
                                                    **queue(campaign, annotator, after_vote=not result.duplicate)})


def skip(campaign: Campaign, annotator, data) -> Reply:
    """Give an item of the queue back ({"item"}); the reply brings the queue after it."""
    serializer = SkipSerializer(data=data)
    if not serializer.is_valid():
        return Reply(400, serializer.errors)
    try:
        assignment.skip_item(campaign, annotator, serializer.validated_data["item"])
    except assignment.NotAssigned:
        return NOT_IN_QUEUE
    return Reply(200, queue(campaign, annotator))


def _refusal(e: Exception) -> str:
    if isinstance(e, assignment.CampaignClosed):
        return "the campaign is closed"
    return "this item waited too long and went to other annotators"
