from django.apps import AppConfig


class FleetConfig(AppConfig):
    """The workers that run the lab's jobs, as an admin sees and steers them (staff only)."""

    name = "lab.fleet"
    label = "fleet"

    def ready(self) -> None:
        from lab.fleet.admission import admit_quietly
        from lab.runs.models import Run
        from lab.runs.signals import run_waiting

        run_waiting.connect(lambda sender, run, **_: admit_quietly(), sender=Run, weak=False,
                            dispatch_uid="fleet-admission")
