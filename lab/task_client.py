"""The web's Celery client: it sends tasks by name and reads inference answers. The workers' own app
(workers/app.py) runs them; the web never imports `workers` (DESIGN.md), so it keeps its own client,
configured from the same CELERY_* settings."""

from celery import Celery

client = Celery("lab")
client.config_from_object("django.conf:settings", namespace="CELERY")
