from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "lab.datasets"
    label = "datasets"

    def ready(self) -> None:
        # A clean run's output (training/stages.py CORPUS, registered_by "datasets") becomes dataset versions.
        from lab.datasets.versions import register_dataset_version
        from lab.runs.outputs import REGISTRARS
        from training.stages import CORPUS

        REGISTRARS[CORPUS.kind] = register_dataset_version
