"""Serving a model: the OpenAI-compatible API streaming from an inference worker, against the same
engine called in-process on the same model.

The model is bench/sft.py's: a ChatML tokenizer and a random Llama of ~2.2M parameters, as a Hugging
Face folder, registered as a team's checkpoint of a throwaway lab (bench/lab.py: Daphne, Redis, the
database) with one inference worker (`--pool solo`, as `make up` starts it).

- Time to first token: REQUESTS streamed chat completions through `/v1/chat/completions` (the real
  `openai` client), interleaved with the same requests to training/serving.py's `stream` on a model
  loaded in this process (the worker's cache is warm too). TTFT is from the call to the first token.
  Goal: the API adds at most 50 ms at p95 (p95 through the API minus p95 in-process).
- Decode: tokens/s from the first token to the last, the same requests and seeds (so the same tokens):
  the API's median over the in-process median, goal ≥ 0.9. A streamed chunk holds the tokens that came
  together (lab/hub/openai_api.py), so each token's arrival is the arrival of the chunk its text ends in,
  found by laying the in-process answer's token texts along the chunks (the two texts must be equal).
- Concurrency: CONCURRENT clients at once, each streaming ROUNDS answers: every answer must arrive
  whole, with no error; their p95 TTFT is recorded (one worker serves one answer at a time, so a
  client's first token waits for the answers queued before it).

Both sides decode on one CPU thread (the inference worker with OMP_NUM_THREADS=1, this process with
torch.set_num_threads(1)): on a small machine that also runs the web, Redis and the clients, threads
that wait for each other would measure the machine's contention, not the serving path. The load
average before and after is recorded: numbers from a machine busy with other work mean little.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REQUESTS = 12
MAX_TOKENS = 64
CONCURRENT = 8
ROUNDS = 2
TTFT_ADDED_GOAL_MS = 50.0
DECODE_RATIO_GOAL = 0.9
PROMPTS = ["Tell me of the king.", "What says the duke?", "Speak of love and war.", "Who comes here?"]


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def _decode_rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def _in_process(cache, model_dir: Path, prompt: str, seed: int) -> tuple[float, list[float], list[str]]:
    """Time to the first token (ms), each token's time, each token's text."""
    from training.serving import GenerationRequest, stream

    request = GenerationRequest(messages=[{"role": "user", "content": prompt}], temperature=0.8, seed=seed,
                                max_new_tokens=MAX_TOKENS)
    started, times, texts = time.perf_counter(), [], []
    for item in stream(cache, model_dir, request):
        if item["type"] == "token":
            times.append(time.perf_counter())
            texts.append(item["text"])
    return (times[0] - started) * 1000, times, texts


def _through_api(client, model: str, prompt: str, seed: int) -> tuple[float, list[float], list[str]]:
    """Time to the first text (ms), each chunk's arrival, each chunk's text."""
    started, times, texts = time.perf_counter(), [], []
    chunks = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            temperature=0.8, seed=seed, max_tokens=MAX_TOKENS, stream=True)
    for chunk in chunks:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
            texts.append(chunk.choices[0].delta.content)
    return (times[0] - started) * 1000, times, texts


def _token_times(token_texts: list[str], chunk_times: list[float], chunk_texts: list[str]) -> list[float]:
    """When each token arrived through the API: the arrival of the chunk its text ends in."""
    if "".join(token_texts) != "".join(chunk_texts):
        raise AssertionError("the API's answer differs from the in-process answer with the same seed")
    ends, end = [], 0
    for text in chunk_texts:
        end += len(text)
        ends.append(end)
    times, chunk, end = [], 0, 0
    for text in token_texts:
        end += len(text)
        while ends[chunk] < end:
            chunk += 1
        times.append(chunk_times[chunk])
    return times


def main() -> dict:
    import openai
    import torch

    from bench.lab import BenchLab
    from bench.sft import build_base_model
    from lab.queues import INFERENCE_QUEUE
    from training.serving import ModelCache

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, BenchLab() as lab:
        from rest_framework.authtoken.models import Token  # Django is set up by now

        from lab.accounts.actions import create_team, create_user
        from lab.hub.base_models import register_model_folder

        model_dir = build_base_model(Path(tmp) / "model")
        lab.stack.env["OMP_NUM_THREADS"] = "1"
        lab.stack.start("inference", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", INFERENCE_QUEUE,
                                      "--pool", "solo", "-n", "bench-inference@%h", "--loglevel", "WARNING"],
                        log=lab.tmp / "inference.log")
        user = create_user("bench", "bench-serving-2026")
        artifact = register_model_folder(create_team("Bench", user), model_dir, "bench model", user)
        client = openai.OpenAI(base_url=f"{lab.base_url}/v1", api_key=Token.objects.create(user=user).key,
                               max_retries=0, timeout=120)
        model = f"model-{artifact.pk}"
        torch.set_num_threads(1)
        cache = ModelCache(device="cpu")
        _in_process(cache, model_dir, PROMPTS[0], 0)  # both load the model and warm up first
        _through_api(client, model, PROMPTS[0], 0)

        api_ttft, local_ttft, api_rate, local_rate, tokens, chunks = [], [], [], [], [], []
        for i in range(REQUESTS):
            prompt = PROMPTS[i % len(PROMPTS)]
            ttft, times, token_texts = _in_process(cache, model_dir, prompt, i)
            local_ttft.append(ttft)
            local_rate.append(_decode_rate(times))
            ttft, chunk_times, chunk_texts = _through_api(client, model, prompt, i)
            api_ttft.append(ttft)
            api_rate.append(_decode_rate(_token_times(token_texts, chunk_times, chunk_texts)))
            tokens.append(len(times))
            chunks.append(len(chunk_times))

        concurrent_ttft, errors, answers = [], [], []

        def one_client(n: int) -> None:
            for r in range(ROUNDS):
                try:
                    ttft, _, texts = _through_api(client, model, PROMPTS[(n + r) % len(PROMPTS)], 100 + n * ROUNDS + r)
                    concurrent_ttft.append(ttft)
                    answers.append(len(texts))
                except Exception as exc:  # counted: the goal is none
                    errors.append(f"{type(exc).__name__}: {exc}")

        clients = [threading.Thread(target=one_client, args=(n,)) for n in range(CONCURRENT)]
        started = time.perf_counter()
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        concurrent_s = time.perf_counter() - started

    added = _p95(api_ttft) - _p95(local_ttft)
    ratio = statistics.median(api_rate) / statistics.median(local_rate)
    return {
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2), "met": True},
        "ttft": {
            "api_ms_p50": round(statistics.median(api_ttft), 2), "api_ms_p95": round(_p95(api_ttft), 2),
            "in_process_ms_p50": round(statistics.median(local_ttft), 2), "in_process_ms_p95": round(_p95(local_ttft), 2),
            "added_ms_p95": round(added, 2), "goal_ms": TTFT_ADDED_GOAL_MS, "met": added <= TTFT_ADDED_GOAL_MS,
            "requests": REQUESTS, "tokens_per_answer_median": statistics.median(tokens),
        },
        "decode": {
            "api_tokens_per_s": round(statistics.median(api_rate), 1),
            "in_process_tokens_per_s": round(statistics.median(local_rate), 1),
            "ratio": round(ratio, 3), "goal": DECODE_RATIO_GOAL, "met": ratio >= DECODE_RATIO_GOAL,
            "api_chunks_per_answer_median": statistics.median(chunks),
        },
        "concurrent": {
            "clients": CONCURRENT, "answers": len(answers), "asked": CONCURRENT * ROUNDS, "errors": errors[:5],
            "ttft_ms_p95": round(_p95(concurrent_ttft), 1) if concurrent_ttft else None,
            "seconds": round(concurrent_s, 2), "met": not errors and len(answers) == CONCURRENT * ROUNDS,
        },
    }
