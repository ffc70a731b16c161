"""A campaign labelled by a judge on a worker (AI feedback): a reward model of the team, or a checkpoint
reading the campaign's guidelines as a rubric (the judge stage: training/judge.py).

    judge_models(team) -> QuerySet[Artifact]
        The team's checkpoints that can judge: reward models (metadata task "reward") and causal LMs;
        classifiers cannot.

    start_judge(campaign, artifact, user) -> Judge
        Writes the campaign's pairs into a new judge run's folder and queues the run, through
        create_run (the one way a run is made). ConfigError, naming the field, when the campaign has
        no items or the model cannot judge; nothing is created then.

    register_judgements(run, event)
        The judge run's output (registered as its Output declares: lab/runs/outputs.py REGISTRARS):
        each judgement becomes a JudgeVote of the run's Judge. Again for the same run stores nothing new.

The dashboard shows each judge as an annotator (lab/feedback/dashboard.py).
A judge's votes are apart from the people's: they hold no place in an item's overlap, so a campaign
can be labelled by people, by a judge, or both; the export takes either or both and names a judge's
votes as such.
"""

import json
from dataclasses import asdict
from pathlib import Path

from django.db import transaction
from django.db.models import Q

from lab.feedback.models import Campaign, Judge, JudgeVote
from lab.feedback.streaming import announce_change
from lab.queues import run_queue
from lab.runs.actions import create_run
from lab.runs.models import Artifact, Run
from training import json_limits
from training.config import ConfigError
from training.judge_config import PAIRS_FILE, JudgeConfig
from training.stages import STAGES

STAGE = STAGES["judge"]
REWARD_TASK = "reward"
"""The `task` of a reward model's metadata (interface 1: training/reward.py)."""
NOT_JUDGES = ("classification",)
"""Tasks of checkpoints that cannot judge: a classifier answers with its own labels, not A or B."""
# The run's own folder exists only once the run does: create_run sets it.
PENDING_OUTPUT_DIR = "/pending"


def judge_models(team):
    return (Artifact.objects.filter(team=team, kind=Artifact.Kind.CHECKPOINT)
            .exclude(Q(metadata__has_key="task") & Q(metadata__task__in=NOT_JUDGES)).order_by("-created_at"))


def method_of(artifact: Artifact) -> str:
    return Judge.Method.REWARD if artifact.metadata.get("task") == REWARD_TASK else Judge.Method.RUBRIC


def start_judge(campaign: Campaign, artifact: Artifact, user) -> Judge:
    if artifact.team_id != campaign.team_id or not judge_models(campaign.team).filter(pk=artifact.pk).exists():
        raise ConfigError("model", f"{artifact.name} cannot judge: a judge is a reward model or a checkpoint that writes text, "
                                   f"of {campaign.team.name} (a classifier answers with its own labels, not A or B)")
    pairs = [{"item": pk, "prompt": prompt, "response_a": a, "response_b": b}
             for pk, prompt, a, b in campaign.items.order_by("pk").values_list("pk", "prompt", "response_a", "response_b")]
    if not pairs:
        raise ConfigError("model", "the campaign has no items to judge yet: add pairs first")
    method = method_of(artifact)
    config = asdict(JudgeConfig(model_path=str(artifact.absolute_path), output_dir=PENDING_OUTPUT_DIR, method=method,
                                guidelines=campaign.guidelines))
    with transaction.atomic():
        run = create_run(campaign.team, STAGE.name, run_queue(STAGE.gpu), config,
                         {"model": {"kind": "artifact", "id": artifact.pk, "sha256": artifact.sha256},
                          "campaign": {"kind": "campaign", "id": campaign.pk, "items": len(pairs)}}, user)
        _write_pairs(Path(run.output_dir) / PAIRS_FILE, pairs)
        judge = Judge.objects.create(campaign=campaign, run=run, artifact=artifact, method=method, created_by=user,
                                     name=f"judge · {artifact.name} (run {run.pk})")
        transaction.on_commit(lambda: announce_change(campaign.pk))
    return judge


def _write_pairs(path: Path, pairs: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")


def register_judgements(run: Run, event: dict) -> list[JudgeVote]:
    """The judge's votes from the run's judgements file, on the items of its campaign (a line naming
    another item is not stored); nothing when the campaign was deleted while the judge ran."""
    judge = Judge.objects.select_related("campaign").filter(run=run).first()
    if judge is None:
        return []
    items = set(judge.campaign.items.values_list("pk", flat=True))
    votes = []
    with open(event["path"], encoding="utf-8") as f:
        for line in f:
            record = json_limits.loads(line)
            if record["item"] in items and record["label"] in ("a", "b", "tie"):
                votes.append(JudgeVote(judge=judge, item_id=record["item"], label=record["label"], answers=record["answers"]))
    created = JudgeVote.objects.bulk_create(votes, ignore_conflicts=True)
    transaction.on_commit(lambda: announce_change(judge.campaign_id))
    return created
