"""A dataset in the REST API; the campaigns' export answers with one too."""

from rest_framework import serializers

from lab.datasets.models import Dataset


class DatasetSerializer(serializers.ModelSerializer):
    """A dataset; only its name and description can be changed."""

    class Meta:
        model = Dataset
        fields = ["id", "team", "name", "description", "kind", "format", "size_bytes", "sha256", "n_records", "stats",
                  "created_at"]
        read_only_fields = [f for f in fields if f not in ("name", "description")]
