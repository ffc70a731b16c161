from django import forms
from django.contrib.auth import get_user_model

from lab.accounts.models import Membership
from lab.feedback.export import BOTH_BAD_POLICIES, LABEL_SOURCES
from lab.feedback.models import MAX_OVERLAP, Campaign


def annotator_choices(teams) -> list[tuple[int, str]]:
    memberships = Membership.objects.filter(team__in=teams).select_related("user", "team").order_by("team__name", "user__username")
    return [(m.user.pk, f"{m.user.username} · {m.team.name} ({m.role})") for m in memberships]


class AnnotatorsField(forms.TypedMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        super().__init__(coerce=int, required=False, **kwargs)


def overlap_field() -> forms.IntegerField:
    return forms.IntegerField(min_value=1, max_value=MAX_OVERLAP, initial=2, help_text="Annotators per item.")


def chosen_users(ids) -> list:
    return list(get_user_model().objects.filter(pk__in=ids))


class CampaignForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int)
    name = forms.CharField(max_length=200)
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                                 help_text="Markdown. Shown to annotators above every item.")
    overlap = overlap_field()
    annotators = AnnotatorsField(help_text="People of the team who judge the items.")
    pairs = forms.FileField(required=False, help_text='Optional: a JSONL of pairs, one {"prompt", "response_a", '
                            '"response_b"} a line, with "model_a", "model_b" and "gold" (a, b, tie, both_bad) if known.')

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]
        self.fields["annotators"].choices = annotator_choices(teams)


class PairsForm(forms.Form):
    pairs = forms.FileField(help_text="A JSONL of pairs; they join the campaign at once, also while it runs.")


class SettingsForm(forms.ModelForm):
    overlap = overlap_field()
    annotators = AnnotatorsField()

    class Meta:
        model = Campaign
        fields = ["status", "overlap", "guidelines"]
        widgets = {"guidelines": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"].choices = annotator_choices([self.instance.team])
        self.fields["annotators"].initial = list(self.instance.annotators.values_list("pk", flat=True))


class ExportForm(forms.Form):
    both_bad = forms.ChoiceField(choices=[(p, p) for p in BOTH_BAD_POLICIES], initial="drop", label="Both bad",
                                 help_text="drop: left out; unpaired: also written as unpaired bad labels.")
    min_votes = forms.IntegerField(min_value=1, initial=1, label="Votes at least")
    labels_from = forms.ChoiceField(choices=[(s, s) for s in LABEL_SOURCES], initial="all", label="Votes of",
                                    help_text="all: people and judges, a judge counting as one annotator.")
