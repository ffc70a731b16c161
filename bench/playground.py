"""Time to first token through the playground against the same engine in-process: what the lab adds (the
page's websocket → the web process → the task queue → an inference worker → the Redis stream → the
websocket) to what the model itself takes. Goal: at most 50 ms added at p95.

The model is bench/sft.py's (a ChatML tokenizer and a random Llama: the time to a first token does not
depend on what was learned), registered in a throwaway lab (bench/lab.py: Daphne, Redis, the database)
with one inference worker (`--pool solo`, as `make up` starts it). REQUESTS short chats, each asking
for 4 tokens with the inspector's 5 alternatives, sent over the playground's socket as the page sends
them and interleaved with the same requests to training/serving.py's `stream` on a model loaded in this
process; both sides load the model and warm up first. (bench/serving.py measures the same for the
OpenAI-compatible API.)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REQUESTS = 40
ADDED_P95_GOAL_MS = 50.0
PROMPTS = ["Tell me of the king.", "What says the duke?", "Speak of love and war.", "Who comes here?"]


def _request(i: int) -> dict:
    return {"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], "temperature": 0.8, "seed": i,
            "max_new_tokens": 4, "alternatives": 5}


def _in_process(cache, model_dir: Path, i: int) -> float:
    """ms from asking to the first token, the model already loaded in this process."""
    from training.serving import GenerationRequest, stream

    started = time.perf_counter()
    answer = stream(cache, model_dir, GenerationRequest.from_dict(_request(i)))
    next(answer)
    first = (time.perf_counter() - started) * 1000
    for _ in answer:
        pass
    return first


def _through_the_playground(socket, model_id: int, i: int) -> float:
    """ms from the page sending its prompt to the first token arriving on its websocket."""
    started, first = time.perf_counter(), None
    socket.send(json.dumps({"action": "generate", "ref": i, "model": model_id, "request": _request(i)}))
    while True:
        message = json.loads(socket.recv(timeout=120))
        item = message.get("item", {})
        if message.get("status") or item.get("type") == "error":
            raise RuntimeError(f"the playground did not answer: {message}")
        if first is None and item.get("type") == "token":
            first = (time.perf_counter() - started) * 1000
        if item.get("type") == "done":
            return first


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> dict:
    from websockets.sync.client import connect

    from bench.feedback import _session_cookie
    from bench.lab import BenchLab
    from bench.sft import build_base_model
    from lab.queues import INFERENCE_QUEUE
    from training.serving import ModelCache

    with tempfile.TemporaryDirectory(prefix="bench-playground-") as tmp, BenchLab() as lab:
        from lab.accounts.actions import create_team, create_user  # Django is set up by now
        from lab.hub.base_models import register_model_folder

        model_dir = build_base_model(Path(tmp) / "model")
        lab.stack.start("inference", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", INFERENCE_QUEUE,
                                      "--pool", "solo", "-n", "bench-inference@%h", "--loglevel", "WARNING"],
                        log=lab.tmp / "inference.log")
        user = create_user("bench-player", None)
        model = register_model_folder(create_team("Bench", user), model_dir, "bench model", user)
        port = lab.base_url.rsplit(":", 1)[1]
        socket = connect(f"ws://127.0.0.1:{port}/ws/playground/", open_timeout=30,
                         additional_headers={"Cookie": f"sessionid={_session_cookie(user)}",
                                             "Origin": f"http://127.0.0.1:{port}"})
        cache = ModelCache(device="cpu")
        with socket:
            _in_process(cache, model_dir, 0)  # both load the model and warm up first
            _through_the_playground(socket, model.pk, 0)
            local, page = [], []
            for i in range(1, REQUESTS + 1):
                local.append(_in_process(cache, model_dir, i))
                page.append(_through_the_playground(socket, model.pk, i))

    added = _p95(page) - _p95(local)
    return {"ttft": {
        "load_average_1m": round(os.getloadavg()[0], 2),  # others' work on the machine shows in both columns
        "playground_ms_p50": round(statistics.median(page), 2), "playground_ms_p95": round(_p95(page), 2),
        "in_process_ms_p50": round(statistics.median(local), 2), "in_process_ms_p95": round(_p95(local), 2),
        "added_ms_p95": round(added, 2), "goal_ms": ADDED_P95_GOAL_MS, "met": added <= ADDED_P95_GOAL_MS,
        "requests": REQUESTS,
    }}
