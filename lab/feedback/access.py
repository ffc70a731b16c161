"""Who reaches a campaign, and how: every view, API action and websocket of the app asks here.

Owners and members of the campaign's team manage it and see its dashboard. Annotators chosen for it
(whatever their role, while they remain on the team) see only its queue. Anything else is a 404.
"""

from django.http import Http404

from lab.access import working_teams
from lab.feedback.models import Campaign


def _pk(pk) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise Http404("not found") from None


def campaigns_for_user(user):
    """The campaigns a team owner or member manages."""
    return Campaign.objects.filter(team__in=working_teams(user)).select_related("team")


def campaigns_to_annotate(user):
    """The campaigns the user is an annotator of, on a team they still belong to."""
    if not user.is_authenticated:
        return Campaign.objects.none()
    return Campaign.objects.filter(annotators=user, team__memberships__user=user).select_related("team").distinct()


def get_campaign_for_user(user, pk) -> Campaign:
    pk = _pk(pk)
    if not user.is_authenticated:
        raise Http404("not found")
    campaign = campaigns_for_user(user).filter(pk=pk).first()
    if campaign is None:
        raise Http404("not found")
    return campaign


def get_campaign_for_annotator(user, pk) -> Campaign:
    pk = _pk(pk)
    campaign = campaigns_to_annotate(user).filter(pk=pk).first()
    if campaign is None:
        raise Http404("not found")
    return campaign
