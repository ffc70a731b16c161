"""/api/campaigns/: the feedback campaign through the REST API (token or session auth).

    GET    /api/campaigns/                      campaigns you manage or annotate
    POST   /api/campaigns/                      {"team", "name", "guidelines"?, "overlap"?, "annotators"?: [user ids]}
    GET    /api/campaigns/<id>/
    POST   /api/campaigns/<id>/items/           a JSON list of item dicts, or multipart `file`: a pairs JSONL
    GET    /api/campaigns/<id>/next/            annotators: your queue (the item to judge and the one after)
    POST   /api/campaigns/<id>/vote/            annotators: {"item", "choice": left|right|tie|both_bad,
                                                "strength"?, "rationale"?, "seconds"?} -> the vote and your queue
    POST   /api/campaigns/<id>/skip/            annotators: {"item"} -> your queue
    GET    /api/campaigns/<id>/stats/           progress, agreement, position bias, the leaderboard
    POST   /api/campaigns/<id>/export/          {"both_bad"?: drop|unpaired, "min_votes"?} -> the dataset

next, vote and skip answer as the annotator page's websocket does (lab/feedback/judging.py).
"""

from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from lab import access
from lab.datasets.serializers import DatasetSerializer
from lab.feedback import actions, judging
from lab.feedback.access import (
    campaigns_for_user,
    campaigns_to_annotate,
    get_campaign_for_annotator,
    get_campaign_for_user,
)
from lab.feedback.dashboard import campaign_stats
from lab.feedback.export import BOTH_BAD_POLICIES, LABEL_SOURCES, NothingToExport, export_campaign
from lab.feedback.items import ItemErrors, read_pairs_jsonl
from lab.feedback.judging import SkipSerializer, VoteSerializer
from lab.feedback.models import MAX_ID, MAX_OVERLAP, Campaign
from lab.parsers import JSONParser
from lab.runs.models import Run


class TeamRelatedField(serializers.PrimaryKeyRelatedField):
    """A thing of the campaign's team (context["team"]), by id. Any other id, another team's or one
    that names nothing (beyond 64 bits too), is refused in the same words: nothing outside the team
    is resolved."""

    def team_queryset(self, team):
        raise NotImplementedError

    def get_queryset(self):
        team = self.context.get("team")
        return self.team_queryset(team) if team else self.queryset_model.objects.none()

    def to_internal_value(self, data):
        pk = int(data) if isinstance(data, str) and data.isascii() and data.isdigit() else data
        if isinstance(pk, bool) or not isinstance(pk, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 1 <= pk <= MAX_ID:
            self.fail("does_not_exist", pk_value=pk)
        return super().to_internal_value(pk)


class TeamMemberField(TeamRelatedField):
    default_error_messages = {"does_not_exist": actions.NOT_A_MEMBER,
                              "incorrect_type": "a user is named by id (an integer), not {data_type}"}
    queryset_model = get_user_model()

    def team_queryset(self, team):
        return get_user_model().objects.filter(memberships__team=team)


class TeamRunField(TeamRelatedField):
    default_error_messages = {"does_not_exist": "run {pk_value} is not a run of this team",
                              "incorrect_type": "a run is named by id (an integer), not {data_type}"}
    queryset_model = Run

    def team_queryset(self, team):
        return Run.objects.filter(team=team)


class TeamRefSerializer(serializers.Serializer):
    team = serializers.IntegerField(min_value=1, max_value=MAX_ID)


class CampaignSerializer(serializers.ModelSerializer):
    """Writes need context["team"], the requesting user's team the campaign is for (CampaignViewSet.create)."""

    team = serializers.IntegerField(source="team_id", min_value=1, max_value=MAX_ID)
    annotators = TeamMemberField(many=True, required=False)
    source_run = TeamRunField(required=False, allow_null=True)
    overlap = serializers.IntegerField(min_value=1, max_value=MAX_OVERLAP, required=False,
                                       help_text="How many annotators judge each item.")
    items = serializers.IntegerField(source="items.count", read_only=True)

    class Meta:
        model = Campaign
        fields = ["id", "team", "name", "guidelines", "annotators", "overlap", "status", "source_run", "items",
                  "created_at"]
        read_only_fields = ["id", "status", "items", "created_at"]

    def to_representation(self, campaign):
        data = super().to_representation(campaign)
        if campaign.team_id not in self.context.get("managed_teams", ()):  # an annotator sees the task, not the team
            return {key: data[key] for key in ("id", "name", "guidelines", "status")}
        return data


class QueueItemSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    prompt = serializers.CharField()
    left = serializers.CharField()
    right = serializers.CharField()
    expires_at = serializers.DateTimeField()


QueueSerializer = inline_serializer("Queue", {"queue": QueueItemSerializer(many=True), "done": serializers.IntegerField()})


class ExportSerializer(serializers.Serializer):
    both_bad = serializers.ChoiceField(choices=BOTH_BAD_POLICIES, default="drop",
                                       help_text="unpaired: also write both-bad responses as unpaired bad labels.")
    min_votes = serializers.IntegerField(min_value=1, default=1)
    labels_from = serializers.ChoiceField(choices=LABEL_SOURCES, default="all",
                                          help_text="all: people's and judges' votes; people; judges.")


def item_errors_response(exc: ItemErrors) -> Response:
    return Response({"error": str(exc), "errors": [e.to_dict() for e in exc.errors]}, status=400)


class CampaignViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                      viewsets.GenericViewSet):
    serializer_class = CampaignSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        user = self.request.user
        return Campaign.objects.filter(Q(pk__in=campaigns_for_user(user).values("pk"))
                                       | Q(pk__in=campaigns_to_annotate(user).values("pk"))).select_related("team")

    def get_serializer_context(self):
        return {**super().get_serializer_context(),
                "managed_teams": set(access.working_teams(self.request.user).values_list("pk", flat=True))}

    def get_object(self):
        pk = self.kwargs["pk"]
        found = self.get_queryset().filter(pk=pk).first() if str(pk).isdigit() else None
        if found is None:
            raise NotFound()
        return found

    def _managed(self) -> Campaign:
        return get_campaign_for_user(self.request.user, self.kwargs["pk"])

    def _annotated(self) -> Campaign:
        return get_campaign_for_annotator(self.request.user, self.kwargs["pk"])

    def create(self, request):
        # The team first (another team's is a 404, as a missing one): whom and what the campaign may
        # name is resolved among that team's people and runs only.
        ref = TeamRefSerializer(data=request.data)
        ref.is_valid(raise_exception=True)
        team = access.get_team_for_user(request.user, ref.validated_data["team"])
        serializer = CampaignSerializer(data=request.data, context={**self.get_serializer_context(), "team": team})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            campaign = actions.create_campaign(
                team, data["name"], guidelines=data.get("guidelines", ""), annotators=data.get("annotators", ()),
                overlap=data.get("overlap", 2), created_by=request.user, source_run=data.get("source_run"))
        except ValueError as e:
            raise ValidationError({"non_field_errors": [str(e)]}) from None
        return Response(CampaignSerializer(campaign, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)

    @extend_schema(request={"application/json": {"type": "array", "items": {"type": "object"}},
                            "multipart/form-data": inline_serializer("PairsUpload", {"file": serializers.FileField()})},
                   responses={201: inline_serializer("ItemsAdded", {"added": serializers.IntegerField()})})
    @action(detail=True, methods=["post"])
    def items(self, request, pk=None):
        campaign = self._managed()
        try:
            if "file" in request.FILES:
                upload = request.FILES["file"]
                items = read_pairs_jsonl(upload.read(), upload.name)
            elif isinstance(request.data, list) and request.data:
                items = request.data
            else:
                raise ValidationError({"items": ["send a JSON list of one item or more, or a pairs JSONL as `file`"]})
            added = actions.add_items(campaign, items)
        except ItemErrors as e:
            return item_errors_response(e)
        return Response({"added": added}, status=status.HTTP_201_CREATED)

    @extend_schema(responses=QueueSerializer)
    @action(detail=True, methods=["get"])
    def next(self, request, pk=None):
        return self._reply(judging.next_items(self._annotated(), request.user))

    @extend_schema(request=VoteSerializer, responses={201: inline_serializer(
        "VoteDone", {"duplicate": serializers.BooleanField(), "vote": serializers.IntegerField(),
                     "queue": QueueItemSerializer(many=True), "done": serializers.IntegerField()})})
    @action(detail=True, methods=["post"])
    def vote(self, request, pk=None):
        return self._reply(judging.vote(self._annotated(), request.user, request.data))

    @extend_schema(request=SkipSerializer, responses=QueueSerializer)
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        return self._reply(judging.skip(self._annotated(), request.user, request.data))

    @staticmethod
    def _reply(reply: judging.Reply) -> Response:
        return Response(reply.body, status=reply.status)

    @extend_schema(responses={200: {"type": "object"}})
    @action(detail=True, methods=["get"])
    def stats(self, request, pk=None):
        return Response(campaign_stats(self._managed()))

    @extend_schema(request=ExportSerializer, responses={201: inline_serializer(
        "CampaignExport", {"dataset": DatasetSerializer(), "created": serializers.BooleanField(),
                           "pairs": serializers.IntegerField(), "dropped": serializers.DictField(),
                           "bad_labels": serializers.IntegerField()})})
    @action(detail=True, methods=["post"])
    def export(self, request, pk=None):
        campaign = self._managed()
        data = ExportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = export_campaign(campaign, request.user, **data.validated_data)
        except NothingToExport as e:
            raise ValidationError({"campaign": [str(e)]}) from None
        return Response({"dataset": DatasetSerializer(result.dataset).data, "created": result.created,
                         "pairs": result.pairs, "dropped": result.dropped, "bad_labels": result.bad_rows},
                        status=status.HTTP_201_CREATED)

