"""A run waiting to be sent: the app that admits runs (lab/fleet) listens; runs never import it.
Without a listener a queued run is sent at once (lab/runs/actions.enqueue)."""

from django.dispatch import Signal

run_waiting = Signal()
"""Sent with `run=` once a run is queued (and its transaction committed)."""
