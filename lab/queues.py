"""Queue names the lab sends to outside runs (no Django here: the dev stack reads it before setup).

Runs go to the queue their stage's use of a GPU names (`run_queue`: lab/notebooks/kinds.py RUNNABLE, the
campaign's judge); the reaper to `control`.
"""

# Requests a person waits for in the browser (classify this text): never behind a training run.
INFERENCE_QUEUE = "inference"


def run_queue(gpu: str) -> str:
    """The queue of a run whose stage does `gpu` with a GPU (training.stages.Gpu): only a stage that
    never uses one runs on the CPU workers."""
    return "cpu" if gpu == "none" else "gpu"
