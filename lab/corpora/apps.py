from django.apps import AppConfig


class CorporaConfig(AppConfig):
    name = "lab.corpora"
    label = "corpora"
