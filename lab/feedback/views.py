"""Campaign pages: the list (what you manage, what you annotate), the live dashboard with its
forms, and the annotator's queue. The queue page talks to /api/campaigns/<id>/ (api.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from lab import params
from lab.access import get_team_for_user, working_teams
from lab.feedback.access import (
    campaigns_for_user,
    campaigns_to_annotate,
    get_campaign_for_annotator,
    get_campaign_for_user,
)
from lab.feedback.actions import add_items, create_campaign, set_annotators
from lab.feedback.dashboard import campaign_stats
from lab.feedback.export import NothingToExport, bad_labels_path, export_campaign
from lab.feedback.forms import CampaignForm, ExportForm, PairsForm, SettingsForm, chosen_users
from lab.feedback.items import ItemErrors, read_pairs_jsonl
from lab.feedback.judges import judge_models, start_judge
from lab.runs.models import Artifact
from training.config import ConfigError


@login_required
def campaign_list(request):
    teams = working_teams(request.user)
    form = CampaignForm(request.POST or None, request.FILES or None, teams=teams) if teams.exists() else None
    if request.method == "POST" and form is not None and form.is_valid():
        if campaign := _create(request, form):
            return redirect("campaign-detail", pk=campaign.pk)
    managed = campaigns_for_user(request.user).annotate(
        n_items=Count("items", distinct=True), n_votes=Count("items__votes", distinct=True))
    to_annotate = campaigns_to_annotate(request.user).annotate(
        mine=Count("items__votes", filter=Q(items__votes__annotator=request.user), distinct=True))
    return render(request, "feedback/list.html", {"managed": managed, "to_annotate": to_annotate, "form": form,
                                                  "works": teams.exists()})


def _create(request, form):
    data = form.cleaned_data
    team = get_team_for_user(request.user, data["team"])
    try:
        with transaction.atomic():
            items = read_pairs_jsonl(data["pairs"].read(), data["pairs"].name) if data.get("pairs") else []
            campaign = create_campaign(team, data["name"], guidelines=data["guidelines"], overlap=data["overlap"],
                                       annotators=chosen_users(data["annotators"]), created_by=request.user)
            added = add_items(campaign, items) if items else 0
    except ItemErrors as e:
        for error in e.errors:
            form.add_error("pairs", str(error))
        return None
    except ValueError as e:
        form.add_error(None, str(e))
        return None
    messages.success(request, f"Created campaign '{campaign.name}' with {added} items.")
    return campaign


@login_required
def campaign_detail(request, pk, pairs_form=None, judge_error=None, status=200):
    campaign = get_campaign_for_user(request.user, pk)
    return render(request, "feedback/detail.html", {
        "campaign": campaign,
        "stats": campaign_stats(campaign),
        "pairs_form": pairs_form or PairsForm(),
        "settings_form": SettingsForm(instance=campaign),
        "export_form": ExportForm(),
        "bad_labels": bad_labels_path(campaign).is_file(),
        "is_annotator": campaign.annotators.filter(pk=request.user.pk).exists(),
        "judge_models": judge_models(campaign.team),
        "judges": campaign.judges.select_related("run", "artifact"),
        "judge_error": judge_error,
    }, status=status)


@login_required
@require_POST
def campaign_judge(request, pk):
    """Label the campaign's pairs with a judge: `model`, a reward model or checkpoint of the campaign's team."""
    campaign = get_campaign_for_user(request.user, pk)
    try:
        model = params.integer(request.POST, "model", min_value=1, required=True)
    except ConfigError as e:
        return campaign_detail(request, pk, judge_error=e, status=400)
    artifact = Artifact.objects.filter(team=campaign.team, kind=Artifact.Kind.CHECKPOINT, pk=model).first()
    if artifact is None:
        raise Http404("not found")
    try:
        judge = start_judge(campaign, artifact, request.user)
    except ConfigError as e:
        return campaign_detail(request, pk, judge_error=e, status=400)
    messages.success(request, f"{judge.name} is queued: its votes appear here when the run ends.")
    return redirect("campaign-detail", pk=campaign.pk)


@login_required
@require_POST
def campaign_items(request, pk):
    campaign = get_campaign_for_user(request.user, pk)
    form = PairsForm(request.POST, request.FILES)
    if form.is_valid():
        upload = form.cleaned_data["pairs"]
        try:
            added = add_items(campaign, read_pairs_jsonl(upload.read(), upload.name))
        except ItemErrors as e:
            for error in e.errors:
                form.add_error("pairs", str(error))
        else:
            messages.success(request, f"Added {added} items.")
            return redirect("campaign-detail", pk=campaign.pk)
    return campaign_detail(request, pk, pairs_form=form, status=400)


@login_required
@require_POST
def campaign_settings(request, pk):
    campaign = get_campaign_for_user(request.user, pk)
    form = SettingsForm(request.POST, instance=campaign)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("campaign-detail", pk=campaign.pk)
    try:
        with transaction.atomic():
            form.save()
            set_annotators(campaign, chosen_users(form.cleaned_data["annotators"]))
    except ValueError as e:
        messages.error(request, str(e))
    else:
        messages.success(request, "Saved.")
    return redirect("campaign-detail", pk=campaign.pk)


@login_required
@require_POST
def campaign_export(request, pk):
    campaign = get_campaign_for_user(request.user, pk)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items()))
        return redirect("campaign-detail", pk=campaign.pk)
    try:
        result = export_campaign(campaign, request.user, **form.cleaned_data)
    except NothingToExport as e:
        messages.error(request, str(e))
        return redirect("campaign-detail", pk=campaign.pk)
    dropped = ", ".join(f"{n} {why.replace('_', ' ')}" for why, n in result.dropped.items())
    verb = "Exported" if result.created else "Nothing changed since the last export:"
    messages.success(request, f"{verb} {result.pairs} pairs (left out: {dropped})."
                     + (f" {result.bad_rows} unpaired bad labels are ready to download." if result.bad_file else ""))
    return redirect("dataset-detail", pk=result.dataset.pk)


@login_required
def campaign_bad_labels(request, pk):
    campaign = get_campaign_for_user(request.user, pk)
    path = bad_labels_path(campaign)
    if not path.is_file():
        raise Http404("not exported")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"campaign-{campaign.pk}-both-bad.jsonl")


@login_required
def annotate(request, pk):
    campaign = get_campaign_for_annotator(request.user, pk)
    return render(request, "feedback/annotate.html", {"campaign": campaign})
