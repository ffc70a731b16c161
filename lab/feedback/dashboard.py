"""A campaign's numbers, as the dashboard and the stats API show them (plain JSON).

Implausibly fast: a vote is too fast when it took less than max(1.5 s, characters of both responses
/ 150) — 150 characters a second is about 25 words a second, five times ordinary reading speed and
above skimming. An annotator is flagged once at least 5 of their votes are in and half or more of
them were too fast.

The leaderboard (statistics.bradley_terry): an interval's unbounded side is null (JSON has no
infinity); `unbeaten` and `never_won` flag models that won or lost every battle, and `rating_note`
says in words what was done where the votes do not bound every rating.

Agreement with the majority is leave-one-out: a vote is compared with the most common label among
the other annotators' votes on the item, where that label is unique; items judged by one annotator
only do not count. `majority_kappa` is Cohen's κ of the same pairs of labels (statistics.cohen_kappa).
Position bias: of the votes that picked a winner, the share whose winner was shown on the left (0.5
is unbiased).

Judges (lab/feedback/judges.py) follow the people's rows as annotators with a `judge` entry: their
majority is the people's (all of them: a judge is none of them), their position bias `first_wins` is
the share of their answers that picked the response shown first (each pair is shown in both orders;
null for a reward model, which is shown no order). The other figures (progress, labels, α, κ by
pair, the leaderboard) are the people's.
"""

import math
from collections import Counter, defaultdict
from statistics import median

from django.db.models import Count
from django.db.models.functions import Length

from lab.feedback.models import DECISIVE, Assignment, Campaign, Judge, JudgeVote, Label, Vote
from lab.feedback.statistics import (
    PRIOR_TIES,
    bradley_terry,
    cohen_kappa,
    krippendorff_alpha_nominal,
    pairwise,
    win_rates,
)

MIN_SECONDS = 1.5
CHARS_PER_SECOND = 150
FLAG_AFTER_VOTES = 5
FLAG_SHARE = 0.5
BOOTSTRAP_ROUNDS = 100
BOOTSTRAP_SEED = 0
# Half a win each way, as FastChat counts "tie" and "tie (bothbad)".
OUTCOME = {Label.A: 1.0, Label.B: 0.0, Label.TIE: 0.5, Label.BOTH_BAD: 0.5}


def _share(hits: int, n: int) -> dict:
    return {"n": n, "hits": hits, "rate": hits / n if n else None}


def campaign_stats(campaign: Campaign) -> dict:
    votes = list(
        Vote.objects.filter(item__campaign=campaign)
        .annotate(chars=Length("item__response_a") + Length("item__response_b"))
        .values("item_id", "annotator__username", "label", "strength", "shown_left", "seconds", "chars",
                "item__gold", "item__model_a", "item__model_b")
    )
    items = campaign.items.count()
    by_item: dict[int, dict[str, str]] = defaultdict(dict)
    for v in votes:
        by_item[v["item_id"]][v["annotator__username"]] = v["label"]
    complete = sum(1 for labels in by_item.values() if len(labels) >= campaign.overlap)
    return {
        "campaign": {"id": campaign.pk, "name": campaign.name, "status": campaign.status, "overlap": campaign.overlap},
        "progress": {
            "items": items, "complete_items": complete, "votes": len(votes), "target_votes": items * campaign.overlap,
            "share": len(votes) / (items * campaign.overlap) if items else 0.0,
            "skipped": Assignment.objects.filter(item__campaign=campaign, skipped=True).count(),
        },
        "labels": {label: sum(1 for v in votes if v["label"] == label) for label in Label.values},
        "annotators": _annotators(campaign, votes, by_item) + _judges(campaign, by_item),
        "alpha": {"value": krippendorff_alpha_nominal([list(u.values()) for u in by_item.values()]),
                  "units": sum(1 for labels in by_item.values() if len(labels) >= 2)},
        "kappa": [{"first": a, "second": b, "items": n, "kappa": k} for a, b, n, k in pairwise(_labels_by_rater(votes))],
        "position_bias": _share(*_left_wins(votes)),
        **_leaderboard(votes),
    }


def _labels_by_rater(votes: list[dict]) -> dict[str, dict[int, str]]:
    labels: dict[str, dict[int, str]] = defaultdict(dict)
    for v in votes:
        labels[v["annotator__username"]][v["item_id"]] = v["label"]
    return labels


def _left_wins(votes: list[dict]) -> tuple[int, int]:
    decisive = [v for v in votes if v["label"] in DECISIVE]
    return sum(1 for v in decisive if v["label"] == v["shown_left"]), len(decisive)


def _too_fast(vote: dict) -> bool:
    return vote["seconds"] < max(MIN_SECONDS, (vote["chars"] or 0) / CHARS_PER_SECOND)


def _annotators(campaign: Campaign, votes: list[dict], by_item: dict[int, dict[str, str]]) -> list[dict]:
    names = list(campaign.annotators.order_by("username").values_list("username", flat=True))
    names += sorted({v["annotator__username"] for v in votes} - set(names))  # removed, but they voted
    open_counts = dict(Assignment.objects.filter(item__campaign=campaign, done=False, skipped=False)
                       .values_list("annotator__username").annotate(n=Count("pk")).values_list("annotator__username", "n"))
    rows = []
    for name in names:
        mine = [v for v in votes if v["annotator__username"] == name]
        fast = sum(1 for v in mine if _too_fast(v))
        compared = [(v["label"], top) for v in mine
                    if (top := _unique_top(label for who, label in by_item[v["item_id"]].items() if who != name))]
        gold = [v for v in mine if v["item__gold"]]
        rows.append({
            "annotator": name,
            "votes": len(mine),
            "open": open_counts.get(name, 0),
            "median_seconds": median(v["seconds"] for v in mine) if mine else None,
            "too_fast": fast,
            "flagged_fast": len(mine) >= FLAG_AFTER_VOTES and fast >= FLAG_SHARE * len(mine),
            **_with_majority(compared),
            "gold": _share(sum(1 for v in gold if v["label"] == v["item__gold"]), len(gold)),
            "left_wins": _share(*_left_wins(mine)),
        })
    return rows


def _unique_top(labels) -> str | None:
    """The most common of the labels, where it is unique."""
    top = Counter(labels).most_common(2)
    return top[0][0] if top and (len(top) == 1 or top[0][1] > top[1][1]) else None


def _with_majority(compared: list[tuple[str, str]]) -> dict:
    """Agreement of (label, majority label) pairs: the share that match and Cohen's κ."""
    return {"majority": _share(sum(1 for label, top in compared if label == top), len(compared)),
            "majority_kappa": cohen_kappa([label for label, _ in compared], [top for _, top in compared])}


def _judges(campaign: Campaign, by_item: dict[int, dict[str, str]]) -> list[dict]:
    majority = {item: top for item, labels in by_item.items() if (top := _unique_top(labels.values()))}
    votes: dict[int, list[dict]] = defaultdict(list)
    for v in JudgeVote.objects.filter(judge__campaign=campaign).values("judge_id", "item_id", "label", "answers", "item__gold"):
        votes[v["judge_id"]].append(v)
    rows = []
    for judge in campaign.judges.select_related("run"):
        mine = votes[judge.pk]
        gold = [v for v in mine if v["item__gold"]]
        answers = [o for v in mine for o in v["answers"].get("orders", []) if o.get("choice") in DECISIVE]
        rows.append({
            "annotator": judge.name,
            "judge": {"id": judge.pk, "method": judge.method, "run": judge.run_id,
                      "status": judge.run.status if judge.run else None},
            "votes": len(mine),
            "open": 0,
            "median_seconds": None,
            "too_fast": 0,
            "flagged_fast": False,
            **_with_majority([(v["label"], majority[v["item_id"]]) for v in mine if v["item_id"] in majority]),
            "gold": _share(sum(1 for v in gold if v["label"] == v["item__gold"]), len(gold)),
            "left_wins": None,
            "first_wins": (_share(sum(1 for o in answers if o["choice"] == o["first"]), len(answers))
                           if judge.method == Judge.Method.RUBRIC else None),
        })
    return rows


def battles_of(votes: list[dict]) -> list[tuple[str, str, float]]:
    """Each vote on two different, named models is one battle (a pair of one model's own samples
    says nothing about its rating)."""
    return [(v["item__model_a"], v["item__model_b"], OUTCOME[v["label"]]) for v in votes
            if v["item__model_a"] and v["item__model_b"] and v["item__model_a"] != v["item__model_b"]]


def _leaderboard(votes: list[dict]) -> dict:
    battles = battles_of(votes)
    ratings = bradley_terry(battles, rounds=BOOTSTRAP_ROUNDS, seed=BOOTSTRAP_SEED)
    models, rate, n = win_rates(battles)
    return {
        "leaderboard": [{"model": r.model, "elo": r.elo, "lower": _finite(r.lower), "upper": _finite(r.upper),
                         "rank": r.rank, "battles": r.battles, "unbeaten": r.unbeaten, "never_won": r.never_won}
                        for r in ratings],
        "rating_note": _rating_note(ratings),
        "win_rates": {"models": models, "rate": rate, "n": n},
    }


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _rating_note(ratings) -> str | None:
    """What the leaderboard did where the votes do not pin the ratings down, in words."""
    notes = []
    if ratings and ratings[0].prior:
        ties = "one virtual tie" if PRIOR_TIES == 1 else f"{PRIOR_TIES:g} virtual ties"
        notes.append("Some models never lost a point to the others (or never took one), so the votes have no "
                     f"best fit: these ratings use a weak prior, {ties} of every model against a reference rated 1000.")
    if any(math.isinf(r.lower) or math.isinf(r.upper) for r in ratings):
        notes.append("An open interval (∞) means the votes set no bound on that side: the model won (or lost) all its "
                     "votes, or did in more than 1 in 40 resamples of them.")
    return " ".join(notes) or None
