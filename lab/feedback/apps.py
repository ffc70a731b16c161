from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "lab.feedback"
    label = "feedback"

    def ready(self) -> None:
        # A judge run's output (training/stages.py JUDGEMENTS, registered_by "feedback") becomes votes.
        from lab.feedback.judges import register_judgements
        from lab.runs.outputs import REGISTRARS
        from training.stages import JUDGEMENTS

        REGISTRARS[JUDGEMENTS.kind] = register_judgements
