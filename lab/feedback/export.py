"""A campaign's votes as a lab preference dataset in trl's format.

One record per item whose votes settle a winner:
    {"prompt", "chosen", "rejected", "margin", "item", "campaign", "model_chosen", "model_rejected",
     "annotators", "judges", "votes", "agreement"}
- The item's label is the most common of its votes; an item whose top labels are tied (say one
  vote for a, one for b) is a disagreement and is left out.
- `margin` (read by trl's RewardTrainer) is the mean strength of the votes for the winner:
  slightly 1, clearly 2, much 3; a vote without a strength counts 1.
- `agreement` is the share of the item's votes that gave its label; `annotators` who voted, people
  and judges (lab/feedback/judges.py); `judges` which of them are judges. `labels_from` takes the
  votes of people and judges ("all", a judge's vote counting as one annotator's), of people only, or
  of judges only.
- Ties are left out (they say neither response is preferred). Both-bad items are left out of the
  pairs; with `both_bad="unpaired"` each of their responses also becomes a row of a second file in
  trl's unpaired format {"prompt", "completion", "label": false} (for KTO-style training). The lab
  has no dataset kind for unpaired labels, so that file is kept beside the campaign and
  downloaded, not registered as a dataset.
"""

import json
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils.text import slugify

from lab.datasets.actions import create_dataset_from_chunks, file_chunks
from lab.datasets.models import Dataset
from lab.feedback.models import Campaign, ComparisonItem, JudgeVote, Label, Strength, Vote

STRENGTH_MARGIN = {Strength.SLIGHTLY: 1.0, Strength.CLEARLY: 2.0, Strength.MUCH: 3.0, "": 1.0}
BOTH_BAD_POLICIES = ("drop", "unpaired")
LABEL_SOURCES = ("all", "people", "judges")


class NothingToExport(Exception):
    pass


@dataclass
class Export:
    dataset: Dataset
    created: bool
    pairs: int
    dropped: dict[str, int]
    """Items left out, by reason: tie, both_bad, disagreement."""
    bad_file: Path | None
    bad_rows: int


@dataclass(frozen=True)
class Ballot:
    """One annotator's vote on an item, a person's or a judge's."""

    annotator: str
    label: str
    strength: str
    judge: bool


def export_campaign(campaign: Campaign, user, *, both_bad: str = "drop", min_votes: int = 1,
                    labels_from: str = "all") -> Export:
    """Register the campaign's preference pairs as a dataset of its team (the team's existing one
    when the bytes are the same). Raises NothingToExport when no item has a winner yet."""
    if both_bad not in BOTH_BAD_POLICIES:
        raise ValueError(f"both_bad must be one of {', '.join(BOTH_BAD_POLICIES)}")
    if labels_from not in LABEL_SOURCES:
        raise ValueError(f"labels_from must be one of {', '.join(LABEL_SOURCES)}")
    pairs, bad, dropped = preference_records(campaign, min_votes=min_votes, labels_from=labels_from)
    if not pairs:
        raise NothingToExport(f"no item of campaign {campaign.name} has a winner yet "
                              f"(left out: {', '.join(f'{n} {why}' for why, n in dropped.items() if n) or 'none judged'})")
    name = f"{campaign.name} · preferences"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{slugify(campaign.name) or 'campaign'}-preferences.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs), encoding="utf-8")
        dataset, created = create_dataset_from_chunks(campaign.team, user, name, path.name, file_chunks(path),
                                                      Dataset.Kind.PREFERENCE)
    if created:
        dataset.description = (f"Exported from feedback campaign “{campaign.name}” (#{campaign.pk}): {len(pairs)} pairs. "
                               f"Left out: {dropped['tie']} ties, {dropped['both_bad']} both bad, "
                               f"{dropped['disagreement']} disagreements.")
        dataset.save(update_fields=["description"])
    bad_file = None
    if both_bad == "unpaired" and bad:
        bad_file = bad_labels_path(campaign)
        bad_file.parent.mkdir(parents=True, exist_ok=True)
        bad_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in bad), encoding="utf-8")
    return Export(dataset, created, len(pairs), dropped, bad_file, len(bad) if bad_file else 0)


def bad_labels_path(campaign: Campaign) -> Path:
    return settings.LAB_DATA_DIR / "feedback" / str(campaign.pk) / "both-bad-unpaired.jsonl"


def ballots(campaign: Campaign, labels_from: str = "all") -> dict[int, list[Ballot]]:
    """Item id → its votes (people's first, then judges'), items in order."""
    by_item: dict[int, list[Ballot]] = defaultdict(list)
    if labels_from != "judges":
        for name, item, label, strength in (Vote.objects.filter(item__campaign=campaign).order_by("item_id", "pk")
                                            .values_list("annotator__username", "item_id", "label", "strength")):
            by_item[item].append(Ballot(name, label, strength, judge=False))
    if labels_from != "people":
        for name, item, label in (JudgeVote.objects.filter(judge__campaign=campaign).order_by("judge_id", "item_id")
                                  .values_list("judge__name", "item_id", "label")):
            by_item[item].append(Ballot(name, label, "", judge=True))
    return {item: by_item[item] for item in sorted(by_item)}


def preference_records(campaign: Campaign, *, min_votes: int = 1,
                       labels_from: str = "all") -> tuple[list[dict], list[dict], dict[str, int]]:
    """(pairs, unpaired bad rows, counts of items left out by reason), items in order."""
    votes_by_item = ballots(campaign, labels_from)
    items = ComparisonItem.objects.in_bulk(list(votes_by_item))
    pairs, bad = [], []
    dropped = Counter({"tie": 0, "both_bad": 0, "disagreement": 0})
    for item_id, votes in votes_by_item.items():
        if len(votes) < min_votes:
            continue
        item = items[item_id]
        top = Counter(v.label for v in votes).most_common(2)
        if len(top) == 2 and top[0][1] == top[1][1]:
            dropped["disagreement"] += 1
            continue
        label, count = top[0]
        if label == Label.TIE:
            dropped["tie"] += 1
            continue
        if label == Label.BOTH_BAD:
            dropped["both_bad"] += 1
            bad += [{"prompt": item.prompt, "completion": text, "label": False, "item": item.pk, "model": model}
                    for text, model in ((item.response_a, item.model_a), (item.response_b, item.model_b))]
            continue
        winners = [v for v in votes if v.label == label]
        chosen, rejected = ("a", "b") if label == Label.A else ("b", "a")
        pairs.append({
            "prompt": item.prompt,
            "chosen": getattr(item, f"response_{chosen}"),
            "rejected": getattr(item, f"response_{rejected}"),
            "margin": sum(STRENGTH_MARGIN[v.strength] for v in winners) / len(winners),
            "item": item.pk,
            "campaign": campaign.pk,
            "model_chosen": getattr(item, f"model_{chosen}"),
            "model_rejected": getattr(item, f"model_{rejected}"),
            "annotators": [v.annotator for v in votes],
            "judges": [v.annotator for v in votes if v.judge],
            "votes": len(votes),
            "agreement": count / len(votes),
        })
    return pairs, bad, dict(dropped)
