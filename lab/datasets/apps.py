from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "lab.datasets"
    label = "datasets"
