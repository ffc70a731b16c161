"""Celery tasks: twenty lines each; the work lives in supervisor.py and recovery.py."""

import functools
import socket

from celery.utils.log import get_task_logger

from workers.app import app

log = get_task_logger(__name__)


@app.task(name="workers.execute_run")
def execute_run(run_id: int) -> str:
    from lab.fleet.admission import admit_quietly
    from workers.supervisor import supervise

    hostname = execute_run.request.hostname or socket.gethostname()
    outcome = supervise(run_id, hostname)
    log.info("run %s: %s", run_id, outcome)
    admit_quietly()  # this worker is free again: the next run that waits for it goes
    return outcome


@app.task(name="workers.reap_lost_runs")
def reap_lost_runs() -> int:
    """Runs that lost their worker, then admitted runs that lost their message, then the runs that wait
    for admission: one sweep, one task (the control worker starts a fresh pool child per task)."""
    from lab.fleet.admission import admit
    from workers.recovery import reap_lost_runs as reap
    from workers.recovery import send_lost_runs

    return reap() + send_lost_runs() + len(admit())


@app.task(name="workers.remove_stale_uploads")
def remove_stale_uploads() -> int:
    from lab.datasets.uploads import remove_stale_uploads as remove

    return remove()


@app.task(name="workers.classify_texts", ignore_result=False)
def classify_texts(model_dir: str, texts: list[str]) -> list[dict]:
    """Class probabilities of each text under a classification checkpoint (the `inference` queue)."""
    from training.predict import classify_texts as predict

    return predict(model_dir, texts)


@app.task(name="workers.score_texts", ignore_result=False)
def score_texts(model_dir: str, prompts: list[str], responses: list[str]) -> list[float]:
    """The reward of each response to its prompt under a reward model (the `inference` queue)."""
    from training.reward import score_texts as score

    return score(model_dir, prompts, responses)


@app.task(name="workers.generate_stream")
def generate_stream(request_id: str, model_dir: str, request: dict) -> None:
    """One answer streamed token by token into Redis for the web to read (the `inference` queue;
    lab/hub/generation.py). The models stay loaded in this process between requests."""
    from lab.hub.generation import relay
    from training.serving import GenerationRequest, stream

    relay(request_id, lambda should_stop: stream(model_cache(), model_dir, GenerationRequest.from_dict(request), should_stop))


@functools.cache
def model_cache():
    """This worker process's loaded models (an inference worker runs its tasks in itself: solo pool)."""
    from training.serving import ModelCache

    return ModelCache()
