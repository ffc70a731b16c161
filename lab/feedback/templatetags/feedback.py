from django import template

from lab.access import working_teams

register = template.Library()


@register.filter
def works_on_a_team(user) -> bool:
    """Owner or member of some team; an annotator only sees their campaigns."""
    return working_teams(user).exists()
