from django.apps import AppConfig


class HubConfig(AppConfig):
    """The team's models as things to use: the Models page, downloads, the tokenizer box and asking a model on a worker.
    Runs make artifacts (lab/runs); this app reads them and never the other way round."""

    name = "lab.hub"
    label = "hub"
