"""Every lookup of a team's things goes through here: views, API and websockets alike.

A thing is visible to a user when the user is an owner or member of the thing's team. Anything
else is a 404, never a 403, so ids of other teams cannot be probed.
"""

from django.http import Http404

from lab.accounts.models import WORKING_ROLES, Team
from lab.datasets.models import Dataset
from lab.notebooks.models import Cell, Notebook
from lab.runs.models import Artifact, Run


def working_teams(user):
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user, memberships__role__in=WORKING_ROLES).distinct()


def _get_visible(queryset, user, pk, team_path: str = "team"):
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("not found") from None
    if not user.is_authenticated:
        raise Http404("not found")
    teams = working_teams(user)
    obj = queryset.filter(pk=pk, **{f"{team_path}__in": teams}).first()
    if obj is None:
        raise Http404("not found")
    return obj


def get_team_for_user(user, pk) -> Team:
    return _get_visible(Team.objects.all(), user, pk, team_path="pk")


def get_notebook_for_user(user, pk) -> Notebook:
    return _get_visible(Notebook.objects.select_related("team"), user, pk)


def get_cell_for_user(user, pk) -> Cell:
    return _get_visible(Cell.objects.select_related("notebook__team", "current_run"), user, pk, "notebook__team")


def get_dataset_for_user(user, pk) -> Dataset:
    return _get_visible(Dataset.objects.select_related("team"), user, pk)


def get_run_for_user(user, pk) -> Run:
    return _get_visible(Run.objects.select_related("team", "cell__notebook"), user, pk)


def get_artifact_for_user(user, pk) -> Artifact:
    return _get_visible(Artifact.objects.select_related("team", "run"), user, pk)


def notebooks_for_user(user):
    return Notebook.objects.filter(team__in=working_teams(user)).select_related("team")


def datasets_for_user(user):
    return Dataset.objects.filter(team__in=working_teams(user)).select_related("team")


def runs_for_user(user):
    return Run.objects.filter(team__in=working_teams(user)).select_related("cell__notebook")


def artifacts_for_user(user):
    return Artifact.objects.filter(team__in=working_teams(user)).select_related("run")
