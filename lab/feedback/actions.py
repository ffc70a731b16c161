"""Feedback workflows other code calls (the generate stage, notebook cells, views, the API).

    create_campaign(team, name, *, guidelines="", annotators=(), overlap=2, created_by=None,
                    source_run=None) -> Campaign
        A new open campaign. `annotators` are users who belong to `team` (any role); 1 <= overlap <= MAX_OVERLAP.

    add_items(campaign, items: Iterable[dict]) -> int
        Adds comparison items, also while the campaign runs; returns how many. An item dict is
        {"prompt": str, "response_a": str, "response_b": str, "model_a": str, "model_b": str,
         "artifact_a": int | None, "artifact_b": int | None, "gold": None | "a" | "b" | "tie" | "both_bad"}
        (model_*, artifact_* and gold may be left out). All or nothing: raises ItemErrors naming
        every bad item (its 1-based index as `line`) and field.

    pairs_from_generations(records: Iterable[dict]) -> list[dict]
        Item dicts from the generate stage's generations.jsonl records
        {"prompt_index", "prompt", "model", "artifact", "sample", "text"}: for each prompt, every
        pair of different models, sample i with sample i; a prompt answered by one model only pairs
        its samples (0, 1), (2, 3), …. Deterministic: the display order is randomised later, per
        annotator and item.

    set_annotators(campaign, users) — replaces the annotators (members of the team only). Anyone else is
        refused by id, "user 7 is not a member of this team", whether they exist or not: a team
        learns nothing of other teams' people.

Assignment and votes: assignment.py (take_items, record_vote, skip_item). Export: export.py.
"""

from collections import defaultdict
from collections.abc import Iterable
from itertools import combinations

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from lab.accounts.models import Team
from lab.feedback.items import ItemError, ItemErrors, check_items
from lab.feedback.models import MAX_OVERLAP, Campaign, ComparisonItem
from lab.feedback.streaming import announce_change
from lab.runs.models import Artifact, Run


@transaction.atomic
def create_campaign(team: Team, name: str, *, guidelines: str = "", annotators: Iterable = (), overlap: int = 2,
                    created_by=None, source_run: Run | None = None) -> Campaign:
    if not name.strip():
        raise ValueError("a campaign needs a name")
    if not 1 <= int(overlap) <= MAX_OVERLAP:
        raise ValueError(f"overlap must be between 1 and {MAX_OVERLAP} annotators per item")
    if source_run is not None and source_run.team_id != team.pk:
        raise ValueError(f"run {source_run.pk} belongs to another team")
    campaign = Campaign.objects.create(team=team, name=name.strip(), guidelines=guidelines, overlap=int(overlap),
                                       created_by=created_by, source_run=source_run)
    set_annotators(campaign, annotators)
    return campaign


NOT_A_MEMBER = "user {pk_value} is not a member of this team"
"""Said of anyone who cannot annotate a team's campaign, one who does not exist included."""


def set_annotators(campaign: Campaign, users: Iterable) -> None:
    users = list(users)
    members = set(get_user_model().objects.filter(memberships__team=campaign.team, pk__in=[u.pk for u in users])
                  .values_list("pk", flat=True))
    outsiders = [NOT_A_MEMBER.format(pk_value=u.pk) for u in users if u.pk not in members]
    if outsiders:
        raise ValueError("; ".join(outsiders))
    campaign.annotators.set(users)


ANALYZE_AFTER = 100
"""Items added at once from which the database's statistics of items are renewed."""


def add_items(campaign: Campaign, items: Iterable[dict]) -> int:
    checked = check_items(items)
    artifact_ids = {i[f] for i in checked for f in ("artifact_a", "artifact_b") if i[f] is not None}
    known = set(Artifact.objects.filter(team=campaign.team, pk__in=artifact_ids).values_list("pk", flat=True))
    errors = [ItemError(f"artifact {i[f]} does not exist in team {campaign.team.name}", f, line=n)
              for n, i in enumerate(checked, start=1) for f in ("artifact_a", "artifact_b")
              if i[f] is not None and i[f] not in known]
    if errors:
        raise ItemErrors(errors)
    rows = [ComparisonItem(campaign=campaign, prompt=i["prompt"], response_a=i["response_a"],
                           response_b=i["response_b"], model_a=i["model_a"], model_b=i["model_b"],
                           artifact_a_id=i["artifact_a"], artifact_b_id=i["artifact_b"], gold=i["gold"])
            for i in checked]
    with transaction.atomic():
        ComparisonItem.objects.bulk_create(rows, batch_size=500)
        transaction.on_commit(lambda: announce_change(campaign.pk))
    if len(rows) >= ANALYZE_AFTER and connection.vendor == "postgresql":
        # PostgreSQL plans from table statistics that autovacuum renews about a minute after a bulk
        # insert (its docs advise ANALYZE after one). Until then a new campaign's items look like a
        # handful, and an annotator's done count was planned as a walk over all of them per vote
        # (3 ms instead of 0.5 in bench/feedback.py).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE feedback_comparisonitem")
    return len(rows)


def pairs_from_generations(records: Iterable[dict]) -> list[dict]:
    by_prompt: dict[int, dict] = {}
    for record in records:
        entry = by_prompt.setdefault(record["prompt_index"], {"prompt": record["prompt"], "models": defaultdict(dict)})
        entry["models"][record["model"]][record["sample"]] = (record["text"], record.get("artifact"))
    items = []
    for prompt_index in sorted(by_prompt):
        entry = by_prompt[prompt_index]
        models = entry["models"]
        if len(models) == 1:
            (model, samples), = models.items()
            ordered = [samples[k] for k in sorted(samples)]
            pairs = [((model, ordered[i]), (model, ordered[i + 1])) for i in range(0, len(ordered) - 1, 2)]
        else:
            pairs = [((a, models[a][k]), (b, models[b][k]))
                     for a, b in combinations(list(models), 2)
                     for k in sorted(set(models[a]) & set(models[b]))]
        for (model_a, (text_a, artifact_a)), (model_b, (text_b, artifact_b)) in pairs:
            items.append({"prompt": entry["prompt"], "response_a": text_a, "response_b": text_b,
                          "model_a": model_a, "model_b": model_b, "artifact_a": artifact_a,
                          "artifact_b": artifact_b, "gold": None})
    return items
