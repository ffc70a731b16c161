from django.contrib import admin

from lab.fleet.models import FleetAction, Worker
from lab.runs.admin import ReadOnlyAdmin


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = ("hostname", "state", "queues", "draining", "heartbeat_at", "started_at")
    search_fields = ("hostname", "host")


@admin.register(FleetAction)
class FleetActionAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "action", "target", "detail")
    list_filter = ("action",)
    search_fields = ("target", "actor__username")
