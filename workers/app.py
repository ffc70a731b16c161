"""The Celery app. Settings come from Django's settings (CELERY_* names); see lab/settings.py."""

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lab.settings")
django.setup()

app = Celery("lab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks",)
