"""Who reaches a campaign, and how: every view, API action and websocket of the app asks here.

Owners and members of the campaign's team manage it and see its dashboard. Annotators chosen for it
(whatever their role, while they remain on the team) see only its queue. Anything else is a 404.
"""

from django.http import Http404

from lab.access import working_teams
from lab.feedback.models import MAX_ID, Campaign


def _pk(pk) -> int:
    """A campaign id as the raw statement below can be asked about (an id past 64 bits would raise OverflowError)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("not found") from None
    if not 1 <= pk <= MAX_ID:
        raise Http404("not found")
    return pk


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


# campaigns_to_annotate's rule as one plain statement: every judgement an annotator sends asks it,
# and the ORM would spend several times the database's time building the query.
_ANNOTATOR_CAMPAIGN = """
    SELECT c.* FROM feedback_campaign c
    WHERE c.id = %s
      AND EXISTS (SELECT 1 FROM feedback_campaign_annotators a WHERE a.campaign_id = c.id AND a.user_id = %s)
      AND EXISTS (SELECT 1 FROM accounts_membership m WHERE m.team_id = c.team_id AND m.user_id = %s)"""


def get_campaign_for_annotator(user, pk) -> Campaign:
    pk = _pk(pk)
    if not user.is_authenticated:
        raise Http404("not found")
    campaign = next(iter(Campaign.objects.raw(_ANNOTATOR_CAMPAIGN, [pk, user.pk, user.pk])), None)
    if campaign is None:
        raise Http404("not found")
    return campaign
