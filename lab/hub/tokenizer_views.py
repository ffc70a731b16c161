"""The tokenizer box: a text's tokens under a tokenizer of the team, and beside another one."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse

from lab.access import artifacts_for_user, get_artifact_for_user
from lab.hub.tokenizers import describe_tokenizer, encode_with_artifact
from lab.runs.models import Artifact


@login_required
def tokenizer_encode(request, pk):
    """The text's tokens under the artifact and, with `compare=<artifact id>`, under a second
    tokenizer of the same team, so both colourings always show the same text."""
    artifact = _tokenizer_for_user(request.user, pk)
    text = request.GET.get("text", "")[:5000]
    result = encode_with_artifact(artifact, text)
    if compare_id := request.GET.get("compare"):
        other = _comparison_for_user(request.user, artifact, compare_id)
        result["compare"] = encode_with_artifact(other, text)
    return JsonResponse(result)


@login_required
def tokenizer_compare_options(request, pk):
    """The team's other tokenizers, for the tokenizer cell's "compare with" list."""
    artifact = _tokenizer_for_user(request.user, pk)
    others = artifacts_for_user(request.user).filter(team=artifact.team, kind=Artifact.Kind.TOKENIZER)
    usable = [other for other in others.exclude(pk=artifact.pk) if other.absolute_path.is_file()]
    return JsonResponse({"tokenizers": [describe_tokenizer(other) for other in usable]})


def _tokenizer_for_user(user, pk) -> Artifact:
    artifact = get_artifact_for_user(user, pk)
    if artifact.kind != Artifact.Kind.TOKENIZER:
        raise Http404("not a tokenizer")
    if not artifact.absolute_path.is_file():
        raise Http404("the files of this tokenizer are gone")
    return artifact


def _comparison_for_user(user, artifact: Artifact, pk) -> Artifact:
    other = _tokenizer_for_user(user, pk)
    if other.team_id != artifact.team_id:  # a user of two teams still compares within one
        raise Http404("not found")
    return other
