"""`python -m training pretrain` as the worker runs it: events, learning, checkpoints, signals, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.training.helpers import REPO, cli_env, parse_events, run_cli, tiny_config, write_config

EVENT_TYPES = {"status", "metric", "log", "sample", "checkpoint", "artifact", "error"}
TRAIN_KEYS = {"loss", "lr", "grad_norm", "tokens_per_s", "tokens", "progress"}
CHECKPOINT_FILES = {
    "config.json", "generation_config.json", "model.safetensors",
    "tokenizer.json", "tokenizer_config.json", "optimizer.pt", "trainer_state.json",
}


@pytest.fixture(scope="module")
def cli_run(corpus: Path, tokenizer_path: Path, tokens_cache: Path, tmp_path_factory) -> dict[str, Any]:
    """80 steps of the tiny model through the CLI, events on stdout, starting at seq 7."""
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "run"
    out.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        (out / name).write_bytes((tokens_cache / name).read_bytes())
    cfg = tiny_config(
        corpus, tokenizer_path, out, context_length=64, batch_size=16, max_steps=80, warmup_steps=5,
        lr=6e-3, log_every=4, eval_every=40, eval_batches=4, sample_every=40, sample_prompt="ROMEO:",
        sample_tokens=24, checkpoint_every_steps=40,
    )
    result = run_cli("pretrain", "--config", str(write_config(tmp / "run.json", cfg)), "--seq-start", "7")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"out": out, "events": parse_events(result.stdout), "stderr": result.stderr}


def _of(events: list[dict], type: str) -> list[dict]:
    return [e for e in events if e["type"] == type]


def test_it_emits_valid_events_with_contiguous_seq(cli_run):
    events = cli_run["events"]
    assert [e["seq"] for e in events] == list(range(7, 7 + len(events)))
    assert {e["type"] for e in events} <= EVENT_TYPES
    assert all(isinstance(e["t"], float) for e in events)
    statuses = _of(events, "status")
    assert [s["status"] for s in statuses] == ["running", "succeeded"]
    running = statuses[0]
    assert running["total_steps"] == 80 and running["summary"]["params"] == 857_216
    assert running["summary"]["tokens_per_step"] == 16 * 64
    assert running["summary"]["total_flops"] == 6 * 857_216 * 16 * 64 * 80
    assert events[-1]["type"] == "status" and events[-1]["status"] == "succeeded"


def test_it_learns(cli_run):
    train = [e for e in _of(cli_run["events"], "metric") if "loss" in e["values"]]
    assert [e["step"] for e in train] == list(range(4, 81, 4))
    assert all(set(e["values"]) == TRAIN_KEYS for e in train)
    losses = [e["values"]["loss"] for e in train]
    assert losses[0] - losses[-1] >= 1.0, losses
    last = train[-1]["values"]
    assert last["progress"] == 1.0 and last["tokens"] == 80 * 16 * 64 and last["tokens_per_s"] > 0
    assert last["lr"] == pytest.approx(6e-3 * 0.1, rel=0.05)  # the cosine ends near lr * min_lr_ratio

    val = [e for e in _of(cli_run["events"], "metric") if "val_loss" in e["values"]]
    assert [e["step"] for e in val] == [40, 80]
    assert set(val[0]["values"]) == {"val_loss", "val_ppl"}
    assert val[1]["values"]["val_loss"] < val[0]["values"]["val_loss"] < losses[0]


def test_it_samples_text(cli_run):
    samples = _of(cli_run["events"], "sample")
    assert [s["step"] for s in samples] == [40, 80]
    assert all(s["prompt"] == "ROMEO:" and s["text"] for s in samples)


def test_it_writes_checkpoints_with_exactly_the_expected_files(cli_run):
    out: Path = cli_run["out"]
    checkpoints = _of(cli_run["events"], "checkpoint")
    assert [(c["step"], c["path"]) for c in checkpoints] == [
        (40, str((out / "checkpoint-40").resolve())), (80, str((out / "checkpoint-80").resolve())),
    ]
    for c in checkpoints:
        assert {p.name for p in Path(c["path"]).iterdir()} == CHECKPOINT_FILES
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-40", "checkpoint-80", "tokens.bin", "tokens.json"]
    (artifact,) = _of(cli_run["events"], "artifact")
    assert artifact["kind"] == "checkpoint" and artifact["path"] == checkpoints[-1]["path"]
    assert artifact["metadata"]["val_loss"] == _of(cli_run["events"], "metric")[-1]["values"]["val_loss"]


def test_it_saves_a_model_that_transformers_loads_and_runs(cli_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = cli_run["out"] / "checkpoint-80"
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (tokenizer.eos_token, tokenizer.pad_token) == ("<|endoftext|>", "<|pad|>")
    assert model.config.eos_token_id == tokenizer.eos_token_id == 0
    inputs = tokenizer("ROMEO:", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(output[0], skip_special_tokens=True)
    assert text.startswith("ROMEO:") and len(text) > len("ROMEO:")


def test_it_keeps_library_chatter_off_the_events_stream(cli_run):
    # Every stdout line parsed as an event (the fixture would have failed otherwise); progress bars
    # and warnings, if any, went to stderr.
    assert "Writing model shards" not in cli_run["stderr"]


def _start(cfg_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "training", "pretrain", "--config", str(cfg_path), *extra],
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _read_until_step(proc: subprocess.Popen[str], step: int) -> list[dict]:
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "metric" and events[-1]["step"] >= step:
            return events
    raise AssertionError(f"the run ended before step {step}: {proc.stderr.read() if proc.stderr else ''}")


def test_it_checkpoints_and_exits_0_on_sigint_then_resumes(corpus, tokenizer_path, run_dir: Path, tmp_path: Path):
    cfg = tiny_config(corpus, tokenizer_path, run_dir, max_steps=100_000, log_every=1, eval_every=0)
    proc = _start(write_config(tmp_path / "run.json", cfg))
    events = _read_until_step(proc, 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    events += parse_events(stdout)

    assert proc.returncode == 0, stderr[-3000:]
    last = events[-1]
    assert last["type"] == "status" and last["status"] == "cancelled"
    stopped_at = last["step"]
    assert stopped_at >= 3
    (checkpoint,) = _of(events, "checkpoint")
    assert checkpoint["step"] == stopped_at
    assert {p.name for p in Path(checkpoint["path"]).iterdir()} == CHECKPOINT_FILES

    # The worker resumes with resume_from and the next seq; the curve picks up at the next step.
    resume = {**cfg, "max_steps": stopped_at + 3, "resume_from": checkpoint["path"]}
    next_seq = events[-1]["seq"] + 1
    result = run_cli("pretrain", "--config", str(write_config(tmp_path / "resume.json", resume)),
                     "--seq-start", str(next_seq))
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = parse_events(result.stdout)
    assert resumed[0]["seq"] == next_seq
    running = _of(resumed, "status")[0]
    assert running["status"] == "running" and running["step"] == stopped_at
    steps = [e["step"] for e in _of(resumed, "metric") if "loss" in e["values"]]
    assert steps == [stopped_at + 1, stopped_at + 2, stopped_at + 3]
    assert resumed[-1]["status"] == "succeeded"


def test_it_stops_when_the_worker_stops_reading(corpus, tokenizer_path, run_dir: Path, tmp_path: Path):
    cfg = tiny_config(corpus, tokenizer_path, run_dir, max_steps=100_000, log_every=1, eval_every=0)
    proc = _start(write_config(tmp_path / "run.json", cfg))
    _read_until_step(proc, 1)
    assert proc.stdout is not None
    proc.stdout.close()  # the worker died: nobody reads the pipe any more
    try:
        returncode = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert returncode == 1
    assert "events stream broke" in (proc.stderr.read() if proc.stderr else "")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lr": 0}, "lr"),
        ({"preset": "gpt-7b"}, "preset"),
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"context_length": 100_000}, "context_length"),
        ({"batch_size": "sixteen"}, "batch_size"),
    ],
)
def test_it_exits_2_with_the_field_for_a_bad_config(changes, field, tmp_path: Path):
    cfg = {"corpus_path": "c.txt", "tokenizer_path": "t.json", "output_dir": str(tmp_path), **changes}
    result = run_cli("pretrain", "--config", str(write_config(tmp_path / "run.json", cfg)), "--seq-start", "12")
    assert result.returncode == 2
    (event,) = parse_events(result.stdout)
    assert event["type"] == "error" and event["field"] == field and event["seq"] == 12 and event["message"]


def test_it_exits_2_for_a_config_file_that_is_not_json(tmp_path: Path):
    (tmp_path / "run.json").write_text("{'lr': 0.1")
    result = run_cli("pretrain", "--config", str(tmp_path / "run.json"))
    assert result.returncode == 2
    (event,) = parse_events(result.stdout)
    assert event["field"] == "config" and "not valid JSON" in event["message"]


def test_it_writes_events_to_a_file_when_asked(tmp_path: Path):
    cfg = {"corpus_path": "c.txt", "tokenizer_path": "t.json", "output_dir": str(tmp_path), "lr": -1}
    events = tmp_path / "events.jsonl"
    result = run_cli("pretrain", "--config", str(write_config(tmp_path / "run.json", cfg)), "--events", str(events))
    assert result.returncode == 2 and result.stdout == ""
    assert parse_events(events.read_text())[0]["field"] == "lr"
