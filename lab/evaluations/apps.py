from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    """An evaluate run's report: its table of checkpoints × metrics, the examples a checkpoint got wrong, and two
    checkpoints' answers side by side. Runs make evaluations (lab/runs); this app reads them and never the other way
    round."""

    name = "lab.evaluations"
    label = "evaluations"
