from django.urls import path

from lab.fleet import views

urlpatterns = [
    path("workers/", views.workers_page, name="fleet-workers"),
    path("workers/<str:pk>/drain/", views.worker_drain, name="fleet-worker-drain"),
    path("queue/", views.queue_page, name="fleet-queue"),
    path("runs/<str:pk>/cancel/", views.run_action, {"action": "cancel"}, name="fleet-run-cancel"),
    path("runs/<str:pk>/requeue/", views.run_action, {"action": "requeue"}, name="fleet-run-requeue"),
    path("runs/<str:pk>/pause/", views.run_action, {"action": "pause"}, name="fleet-run-pause"),
    path("runs/<str:pk>/resume/", views.run_action, {"action": "resume"}, name="fleet-run-resume"),
    path("runs/<str:pk>/priority/", views.run_priority, name="fleet-run-priority"),
    path("teams/<str:pk>/quota/", views.team_quota, name="fleet-team-quota"),
    path("usage/", views.usage_page, name="fleet-usage"),
]
