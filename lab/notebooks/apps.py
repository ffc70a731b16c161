from django.apps import AppConfig


class NotebooksConfig(AppConfig):
    name = "lab.notebooks"
    label = "notebooks"
