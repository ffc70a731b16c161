from django.apps import AppConfig


class FleetConfig(AppConfig):
    """The workers that run the lab's jobs, as an admin sees and steers them (staff only)."""

    name = "lab.fleet"
    label = "fleet"
