"""Queue names the lab sends to outside runs (no Django here: the dev stack reads it before setup).

Runs go to the queue their cell kind names (lab/notebooks/kinds.py RUNNABLE); the reaper to `control`.
"""

# Requests a person waits for in the browser (classify this text): never behind a training run.
INFERENCE_QUEUE = "inference"
