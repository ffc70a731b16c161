"""The REST API: the same actions as the pages, through the same access module and actions."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from lab import access
from lab.api import serializers as s
from lab.datasets.actions import create_dataset_from_chunks, delete_dataset
from lab.datasets.views import dataset_response
from lab.hub.downloads import artifact_response
from lab.notebooks.actions import start_cell_run
from lab.notebooks.forms import bind_config
from lab.notebooks.models import Cell, Notebook
from lab.parsers import JSONParser
from lab.runs.actions import cancel_run, pause_run, resume_run
from lab.runs.views import stored_events
from training.config import ConfigError


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.DatasetSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        return access.datasets_for_user(self.request.user)

    def get_object(self):
        return access.get_dataset_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(request={"multipart/form-data": s.DatasetUploadSerializer},
                   responses={201: s.UploadedDatasetSerializer, 200: s.UploadedDatasetSerializer})
    def create(self, request):
        upload = s.DatasetUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        team = access.get_team_for_user(request.user, upload.validated_data["team"])
        f = upload.validated_data["file"]
        dataset, created = create_dataset_from_chunks(team, request.user, upload.validated_data.get("name", ""), f.name,
                                                      f.chunks(), upload.validated_data.get("kind"))
        body = s.UploadedDatasetSerializer(dataset, context={"already_uploaded": not created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=s.DatasetSerializer, responses=s.DatasetSerializer)
    def partial_update(self, request, pk=None):
        serializer = s.DatasetSerializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)

    def destroy(self, request, pk=None):
        delete_dataset(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return dataset_response(self.get_object())


class NotebookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    serializer_class = s.NotebookSerializer

    def get_queryset(self):
        return access.notebooks_for_user(self.request.user).prefetch_related("cells")

    def get_object(self):
        return access.get_notebook_for_user(self.request.user, self.kwargs["pk"])

    def perform_create(self, serializer):
        team = access.get_team_for_user(self.request.user, serializer.validated_data.pop("team_id"))
        serializer.save(team=team, created_by=self.request.user)

    @extend_schema(request=s.CellSerializer, responses=s.CellSerializer)
    @action(detail=True, methods=["post"])
    def cells(self, request, pk=None):
        notebook: Notebook = self.get_object()
        data = s.CellSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        last = notebook.cells.order_by("-position").first()
        cell = Cell(notebook=notebook, kind=data.validated_data["kind"], title=data.validated_data.get("title", ""),
                    position=(last.position + 1) if last else 0)
        cell.config = _validated_config(cell, data.validated_data.get("config", {}))
        cell.save()
        return Response(s.CellSerializer(cell).data, status=status.HTTP_201_CREATED)


def _validated_config(cell: Cell, config) -> dict:
    """`config` merged onto the cell's stored one and validated by the form the page uses, which fills
    the same defaults; every error names its field."""
    try:
        form = bind_config(cell, config)
    except ConfigError as exc:
        raise ValidationError({exc.field: [exc.message]}) from None
    if not form.is_valid():
        raise ValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})
    return form.cleaned_data


class CellViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.CellSerializer

    def get_object(self):
        return access.get_cell_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(request=s.CellSerializer, responses=s.CellSerializer)
    def partial_update(self, request, pk=None):
        cell = self.get_object()
        data = s.CellSerializer(cell, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if data.validated_data.get("kind", cell.kind) != cell.kind:
            raise ValidationError({"kind": ["a cell's kind cannot change: add a cell of the other kind"]})
        if "config" in data.validated_data:
            cell.config = _validated_config(cell, data.validated_data["config"])
        if "title" in data.validated_data:
            cell.title = data.validated_data["title"]
        cell.save()
        return Response(s.CellSerializer(cell).data)

    @extend_schema(request=None, responses=s.RunSerializer)
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        run = start_cell_run(self.get_object(), request.user)
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.RunSerializer

    def get_queryset(self):
        return access.runs_for_user(self.request.user)

    def get_object(self):
        return access.get_run_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(parameters=[OpenApiParameter("after", int, description="only events with a larger seq (at most 5000 of them)")],
                   responses=s.RunEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        return Response(stored_events(self.get_object(), request.query_params))

    @extend_schema(request=None, responses=s.RunSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        run = self.get_object()
        if not cancel_run(run):
            raise ValidationError({"status": [f"run {run.pk} is {run.status} and cannot be cancelled"]})
        return Response(s.RunSerializer(run).data)

    @extend_schema(request=None, responses=s.RunSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        run = self.get_object()
        try:
            pause_run(run, request.user)
        except ConfigError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        return Response(s.RunSerializer(run).data)

    @extend_schema(request=None, responses=s.RunSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        run = self.get_object()
        try:
            resume_run(run, request.user)
        except ConfigError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        return Response(s.RunSerializer(run).data)


class ArtifactViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.ArtifactSerializer

    def get_queryset(self):
        return access.artifacts_for_user(self.request.user)

    def get_object(self):
        return access.get_artifact_for_user(self.request.user, self.kwargs["pk"])

    @extend_schema(responses={(200, "application/zip"): bytes}, parameters=[OpenApiParameter(
        "training_state", bool, description="1: a checkpoint's optimizer, scheduler and RNG state too (to resume)")])
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return artifact_response(self.get_object(), request.query_params.get("training_state") == "1")
