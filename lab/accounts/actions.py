"""Team workflows: creating teams and adding people to them."""

from django.contrib.auth import get_user_model
from django.db import transaction

from lab.accounts.models import Membership, Role, Team


@transaction.atomic
def create_team(name: str, owner) -> Team:
    team = Team.objects.create(name=name)
    Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    return team


def add_member(team: Team, user, role: str = Role.MEMBER) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def create_user(username: str, password: str, **extra):
    return get_user_model().objects.create_user(username=username, password=password, **extra)
