"""/api/uploads/: resumable uploads in chunks (see lab/datasets/uploads.py for the protocol).

    POST   /api/uploads/                    {"filename", "size"}           -> 201 {"id", "offset", "size"}
    PATCH  /api/uploads/<id>/?offset=N      raw bytes of one chunk         -> 200 {"offset"}, 409 on a wrong offset
    GET    /api/uploads/<id>/                                              -> {"offset", "size"} (to resume)
    POST   /api/uploads/<id>/complete/      {"team", "name"?, "kind"?}     -> 201 the dataset
    POST   /api/uploads/<id>/complete-model/ {"team", "name"?}             -> 201 the model (an archive of an HF folder)
    DELETE /api/uploads/<id>/                                              -> 204
"""

from django.shortcuts import get_object_or_404
from django.urls.converters import UUIDConverter
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from lab import access
from lab.api.serializers import ArtifactSerializer, UploadedDatasetSerializer, team_id_field
from lab.datasets.models import Dataset, Upload
from lab.datasets.uploads import (
    OffsetMismatch,
    append_chunk,
    complete_upload,
    discard_upload,
    start_upload,
)
from lab.hub.base_models import import_model_archive
from lab.parsers import JSONParser

CHUNK_BYTES = 8 * 1024 * 1024
"""The chunk size the browser uses; any size works."""


class RawChunk(BaseParser):
    """Leaves the body unread: the view streams it from request.stream to disk."""

    media_type = "application/octet-stream"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class UploadStartSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=1)


class ModelCompleteSerializer(serializers.Serializer):
    team = team_id_field()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class UploadCompleteSerializer(serializers.Serializer):
    team = team_id_field()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices, required=False)


def _state(upload: Upload) -> dict:
    return {"id": str(upload.id), "filename": upload.filename, "offset": upload.received, "size": upload.size,
            "chunk_bytes": CHUNK_BYTES}


class UploadViewSet(viewsets.ViewSet):
    parser_classes = [JSONParser, RawChunk]  # chosen by Content-Type: chunks are octet-stream
    lookup_value_regex = UUIDConverter.regex  # an id that is no UUID is a 404 before any lookup

    def _own(self, pk) -> Upload:
        return get_object_or_404(Upload, pk=pk, user=self.request.user)  # someone else's: 404, as for all

    @extend_schema(request=UploadStartSerializer)
    def create(self, request):
        data = UploadStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = start_upload(request.user, data.validated_data["filename"], data.validated_data["size"])
        return Response(_state(upload), status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(_state(self._own(pk)))

    @extend_schema(request={"application/octet-stream": bytes},
                   parameters=[OpenApiParameter("offset", int, required=True, description="where this chunk starts")])
    def partial_update(self, request, pk=None):
        upload = self._own(pk)
        try:
            offset = int(request.query_params["offset"])
        except (KeyError, ValueError):
            raise ValidationError({"offset": ["give the byte offset this chunk starts at, e.g. ?offset=0"]}) from None
        try:
            upload = append_chunk(upload, offset, request.stream)
        except OffsetMismatch as e:
            return Response({"error": str(e), "offset": e.expected}, status=status.HTTP_409_CONFLICT)
        return Response(_state(upload))

    def destroy(self, request, pk=None):
        discard_upload(self._own(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=UploadCompleteSerializer, responses={201: UploadedDatasetSerializer, 200: UploadedDatasetSerializer})
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        upload = self._own(pk)
        data = UploadCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = access.get_team_for_user(request.user, data.validated_data["team"])
        dataset, created = complete_upload(upload, team, data.validated_data.get("name", ""), data.validated_data.get("kind"))
        body = UploadedDatasetSerializer(dataset, context={"already_uploaded": not created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=ModelCompleteSerializer, responses={201: ArtifactSerializer})
    @action(detail=True, methods=["post"], url_path="complete-model")
    def complete_model(self, request, pk=None):
        upload = self._own(pk)
        data = ModelCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        team = access.get_team_for_user(request.user, data.validated_data["team"])
        artifact = import_model_archive(upload, team, data.validated_data.get("name", ""))
        return Response(ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)
