"""`python -m training classify` as the worker runs it: bad input, SIGINT, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.training.fixtures import PREFERENCE, classify_config
from tests.training.helpers import REPO, cli_env, parse_events, run_cli, write_config


def test_it_exits_2_with_the_field_for_a_dataset_of_another_kind(small_base_model, sms_spam_subset, tmp_path):
    cfg = classify_config(small_base_model, PREFERENCE, tmp_path, dataset_format="jsonl")
    result = run_cli("classify", "--config", str(write_config(tmp_path / "run.json", cfg)))
    assert result.returncode == 2
    (event,) = parse_events(result.stdout)
    assert event["type"] == "error" and event["field"] == "dataset" and "preference" in event["message"]


def test_it_exits_2_with_the_field_for_a_max_length_over_the_context(small_base_model, sms_spam_subset, tmp_path):
    cfg = classify_config(small_base_model, sms_spam_subset, tmp_path, max_length=4096)
    result = run_cli("classify", "--config", str(write_config(tmp_path / "run.json", cfg)))
    assert result.returncode == 2
    (event,) = parse_events(result.stdout)
    assert event["field"] == "max_length" and "128 positions" in event["message"]


def test_it_checkpoints_and_exits_0_on_sigint_then_resumes(small_base_model, sms_spam_subset, tmp_path):
    cfg = classify_config(small_base_model, sms_spam_subset, tmp_path / "run", max_steps=100_000, log_every=1,
                          eval_every=0, checkpoint_every_steps=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "classify", "--config", str(write_config(tmp_path / "run.json", cfg))],
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "metric" and events[-1]["step"] >= 2:
            break
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    events += parse_events(stdout)
    assert proc.returncode == 0, stderr[-3000:]
    assert events[-1]["type"] == "status" and events[-1]["status"] == "cancelled"
    stopped_at = events[-1]["step"]
    (checkpoint,) = [e for e in events if e["type"] == "checkpoint"]
    assert checkpoint["step"] == stopped_at >= 2
    assert (Path(checkpoint["path"]) / "model.safetensors").is_file()
    assert not [e for e in events if e["type"] == "artifact"]

    resume = {**cfg, "max_steps": stopped_at + 3, "resume_from": checkpoint["path"]}
    next_seq = events[-1]["seq"] + 1
    result = run_cli("classify", "--config", str(write_config(tmp_path / "resume.json", resume)),
                     "--seq-start", str(next_seq), timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = parse_events(result.stdout)
    assert resumed[0]["seq"] == next_seq
    running = resumed[0] if resumed[0]["type"] == "status" else next(e for e in resumed if e["type"] == "status")
    assert running["status"] == "running" and running["step"] == stopped_at
    steps = [e["step"] for e in resumed if e["type"] == "metric" and "loss" in e["values"]]
    assert steps == [stopped_at + 1, stopped_at + 2, stopped_at + 3]
    tokens_before = max(e["values"]["tokens"] for e in events if e["type"] == "metric" and "tokens" in e["values"])
    first_tokens = next(e["values"]["tokens"] for e in resumed if e["type"] == "metric" and "tokens" in e["values"])
    assert first_tokens > tokens_before  # the count goes on from the checkpoint's
    assert resumed[-1]["status"] == "succeeded"
    (artifact,) = [e for e in resumed if e["type"] == "artifact"]
    assert artifact["metadata"]["step"] == stopped_at + 3
