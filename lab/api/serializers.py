from rest_framework import serializers

from lab.datasets.models import Dataset
from lab.datasets.serializers import DatasetSerializer
from lab.notebooks.models import Cell, Notebook
from lab.params import ID_MAX
from lab.runs.models import Artifact, Run


def team_id_field(**options) -> serializers.IntegerField:
    """A team's id in a body: a whole number the database can hold (a larger one is a 400, not an overflow)."""
    return serializers.IntegerField(min_value=1, max_value=ID_MAX, help_text="The id of one of your teams.", **options)


class UploadedDatasetSerializer(DatasetSerializer):
    already_uploaded = serializers.SerializerMethodField(
        help_text="True when the team already had a dataset of these exact bytes: that one is returned, with 200.")

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["already_uploaded"]

    def get_already_uploaded(self, dataset) -> bool:
        return self.context["already_uploaded"]


class DatasetUploadSerializer(serializers.Serializer):
    team = team_id_field()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(choices=Dataset.Kind.choices, required=False, help_text="Detected when left out.")
    file = serializers.FileField()


class CellSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cell
        fields = ["id", "notebook", "position", "kind", "title", "config", "current_run", "created_at", "updated_at"]
        read_only_fields = ["id", "notebook", "position", "current_run", "created_at", "updated_at"]


class NotebookSerializer(serializers.ModelSerializer):
    cells = CellSerializer(many=True, read_only=True)
    # An id, looked up by the view through the access module: another team's is a 404, as a missing one.
    team = team_id_field(source="team_id")

    class Meta:
        model = Notebook
        fields = ["id", "team", "title", "cells", "created_at", "updated_at"]
        read_only_fields = ["id", "cells", "created_at", "updated_at"]


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = ["id", "team", "cell", "stage", "queue", "status", "config", "inputs", "code_version", "worker",
                  "attempt", "restarts", "step", "total_steps", "latest_metrics", "last_seq", "last_checkpoint",
                  "error", "error_field", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class RunEventSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    t = serializers.FloatField()
    type = serializers.CharField()


class ArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = Artifact
        fields = ["id", "team", "run", "kind", "name", "sha256", "size_bytes", "metadata", "parent_artifacts",
                  "parent_datasets", "created_at"]
        read_only_fields = fields
