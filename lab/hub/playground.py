"""The playground: talk to a checkpoint of the team, see what it weighed at each token, and compare two
side by side. The page is a template and static/js/playground.js; the answers stream over the
playground's websocket (lab/hub/consumers.py) from an inference worker, and a pair of answers can be
sent to a feedback campaign of the team from here."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from lab.access import artifacts_for_user, get_artifact_for_user
from lab.feedback.access import campaigns_for_user, get_campaign_for_user
from lab.feedback.actions import add_items
from lab.feedback.items import ItemErrors
from lab.feedback.models import Campaign
from lab.runs.models import Artifact
from training import json_limits

NOT_CAUSAL_LMS = ("classification", "reward")
"""Checkpoint tasks that are not language models to talk to: a classifier's or a reward model's head
scores a text instead of predicting the next token."""


def playground_models(user):
    """The checkpoints of the user's teams the playground can talk to."""
    return (artifacts_for_user(user).filter(kind=Artifact.Kind.CHECKPOINT)
            # has_key: without it, a model with no task compares as NULL and would be left out too.
            .exclude(metadata__has_key="task", metadata__task__in=NOT_CAUSAL_LMS).select_related("team").order_by("-pk"))


def get_playground_model(user, pk) -> Artifact:
    """The checkpoint `pk` of the user's teams, when it is a language model; else Http404."""
    artifact = get_artifact_for_user(user, pk)
    if artifact.kind != Artifact.Kind.CHECKPOINT or artifact.metadata.get("task") in NOT_CAUSAL_LMS:
        raise Http404("not a language model")
    return artifact


@login_required
def playground(request, pk=None):
    chosen = get_playground_model(request.user, pk) if pk is not None else None
    models = playground_models(request.user)
    return render(request, "hub/playground.html", {
        "models": models, "chosen": chosen or models.first(),
        "campaigns": campaigns_for_user(request.user).filter(status=Campaign.Status.OPEN).order_by("-pk"),
    })


@login_required
@require_POST
def send_pair(request):
    """Two answers to one prompt, as a comparison item of a campaign of the team:
    `{"campaign": id, "prompt", "response_a", "response_b", "artifact_a": id, "artifact_b": id}`."""
    try:
        data = json_limits.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "the body must be a JSON object", "field": "body"}, status=400)
    if not isinstance(data, dict):
        return JsonResponse({"error": f"the body must be a JSON object, not {type(data).__name__}", "field": "body"}, status=400)
    campaign = get_campaign_for_user(request.user, data.pop("campaign", None))
    models = {}
    for side in ("a", "b"):
        try:
            models[side] = get_playground_model(request.user, data.get(f"artifact_{side}"))
        except Http404:
            return JsonResponse({"error": "no such model of your team", "field": f"artifact_{side}"}, status=404)
    item = {**data, "model_a": models["a"].name, "model_b": models["b"].name}
    try:
        add_items(campaign, [item])
    except ItemErrors as exc:
        return JsonResponse({"errors": [e.to_dict() for e in exc.errors]}, status=400)
    return JsonResponse({"campaign": campaign.pk, "name": campaign.name, "items": campaign.items.count()}, status=201)
