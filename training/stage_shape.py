"""The shape every stage module has (litgpt's), and the one function that runs it.

`setup(cfg, reporter)` prepares everything (device, data, model, trainer) and returns the state, or
None when a stop was asked for while preparing (it has reported `cancelled` then); `fit(state)` does
the work, reports the output and returns its path, or None when stopped. The stages are declared in
training/stages.py; this module has no imports of the lab's so that every stage module can use it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from training.events import Reporter

State = TypeVar("State")


def setup_then_fit(
    setup: Callable[[Any, Reporter], State | None], fit: Callable[[State], Path | None], cfg: Any, reporter: Reporter
) -> Path | None:
    """The whole stage: `fit` runs unless `setup` was stopped (and has reported so)."""
    state = setup(cfg, reporter)
    return None if state is None else fit(state)
