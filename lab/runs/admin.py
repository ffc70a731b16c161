"""Runs, their events and artifacts in Django's admin: read-only, since a run's record is what happened
(staff act on runs through the fleet pages, which keep an audit trail)."""

from django.contrib import admin

from lab.runs.models import Artifact, Run, RunEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("pk", "team", "stage", "status", "queue", "worker", "created_by", "created_at", "started_at", "finished_at")
    list_filter = ("status", "stage", "queue", "team")
    search_fields = ("pk", "worker", "created_by__username")
    date_hierarchy = "created_at"


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    list_display = ("run", "seq", "type", "t")
    list_filter = ("type",)
    search_fields = ("run__pk",)
    list_select_related = ("run",)


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ("pk", "team", "kind", "name", "run", "size_bytes", "created_at")
    list_filter = ("kind", "team")
    search_fields = ("name", "sha256")
