"""`python -m training sft` as the worker runs it: refusals before any work, cancel, resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.training.fixtures import BASE_CONTEXT, PREFERENCE, SFT_MESSAGES
from tests.training.helpers import REPO, cli_env, parse_events, run_cli, write_config
from tests.training.test_sft import subset


def cli_config(base: Path, dataset: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "base_model": str(base), "dataset_path": str(dataset), "output_dir": str(output_dir), "device": "cpu",
        "max_length": 96, "batch_size": 4, "max_steps": 16, "warmup_steps": 2, "lr": 1e-3, "log_every": 1,
        "eval_every": 0, "val_fraction": 0.1, "checkpoint_every_steps": 0, "sample_tokens": 4,
    } | overrides


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"dataset_path": str(PREFERENCE)}, "dataset", "preference"),
        ({"method": "lora", "lora_target_modules": ["q_proj", "qkv"]}, "lora_target_modules", "q_proj, up_proj"),
        ({"max_length": 4 * BASE_CONTEXT}, "max_length", str(BASE_CONTEXT)),
    ],
)
def test_it_refuses_bad_input_before_any_work(base_model: Path, tmp_path: Path, changes, field, words):  # noqa: F811
    cfg = cli_config(base_model, SFT_MESSAGES, tmp_path / "run") | changes
    result = run_cli("sft", "--config", str(write_config(tmp_path / "run.json", cfg)))
    assert result.returncode == 2, result.stderr[-2000:]
    (error,) = parse_events(result.stdout)
    assert error["type"] == "error" and error["field"] == field and words in error["message"], error
    assert not (tmp_path / "run").exists()


def _read_until_step(proc: subprocess.Popen[str], step: int) -> list[dict]:
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["type"] == "metric" and events[-1]["step"] >= step:
            return events
    raise AssertionError(f"the run ended before step {step}: {proc.stderr.read() if proc.stderr else ''}")


def test_it_checkpoints_on_sigint_then_resumes_to_the_end(base_model: Path, tmp_path: Path):  # noqa: F811
    cfg = cli_config(base_model, subset(SFT_MESSAGES, 120, tmp_path), tmp_path / "run", max_steps=400)
    proc = subprocess.Popen(
        [sys.executable, "-m", "training", "sft", "--config", str(write_config(tmp_path / "run.json", cfg))],
        cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    events = _read_until_step(proc, 3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    events += parse_events(stdout)

    assert proc.returncode == 0, stderr[-3000:]
    last = events[-1]
    assert last["type"] == "status" and last["status"] == "cancelled"
    stopped_at = last["step"]
    assert 3 <= stopped_at < 400
    (checkpoint,) = [e for e in events if e["type"] == "checkpoint"]
    assert checkpoint["step"] == stopped_at
    assert Path(checkpoint["path"]) == (tmp_path / "run" / f"checkpoint-{stopped_at}").resolve()
    assert not [e for e in events if e["type"] == "artifact"]
    tokens_at_stop = [e for e in events if e["type"] == "metric"][-1]["values"]["tokens"]

    # The worker resumes with resume_from and the next seq; the steps and the token count go on.
    cfg_resume = cfg | {"resume_from": checkpoint["path"], "max_steps": stopped_at + 3}
    result = run_cli("sft", "--config", str(write_config(tmp_path / "resume.json", cfg_resume)),
                     "--seq-start", str(events[-1]["seq"] + 1))
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = parse_events(result.stdout)
    assert resumed[0]["seq"] == events[-1]["seq"] + 1
    running = resumed[0]
    assert running["status"] == "running" and running["step"] == stopped_at
    assert running["summary"]["resumed_from_step"] == stopped_at
    train = [e for e in resumed if e["type"] == "metric" and "loss" in e["values"]]
    assert [e["step"] for e in train] == [stopped_at + 1, stopped_at + 2, stopped_at + 3]
    assert train[0]["values"]["tokens"] > tokens_at_stop
    assert resumed[-1]["type"] == "status" and resumed[-1]["status"] == "succeeded"
    assert resumed[-1]["step"] == stopped_at + 3
    (artifact,) = [e for e in resumed if e["type"] == "artifact"]
    assert artifact["path"] == str((tmp_path / "run" / f"checkpoint-{stopped_at + 3}").resolve())


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"device": "cpu", "precision": "bf16"}, "precision"),
        ({"device": "cpu", "method": "qlora"}, "method"),
        ({"method": "lora", "lora_target_modules": ["all-linear", "q_proj"]}, "lora_target_modules"),
        ({"chat_template": "{% for m in messages %}{{ m.content }"}, "chat_template"),
        ({"max_steps": 10, "warmup_steps": 10}, "warmup_steps"),
        ({"resume_from": "/nowhere"}, "resume_from"),
    ],
)
def test_it_names_the_field_of_a_bad_value(base_model: Path, tmp_path: Path, changes, field):  # noqa: F811
    from training.config import ConfigError
    from training.sft_config import SftConfig

    with pytest.raises(ConfigError) as info:
        SftConfig.from_dict(cli_config(base_model, SFT_MESSAGES, tmp_path / "run") | changes)
    assert info.value.field == field


def test_it_needs_a_chat_template_for_a_model_without_one(base_model: Path, tmp_path: Path):  # noqa: F811
    import shutil

    from training.config import CHATML_TEMPLATE, ConfigError
    from training.sft_config import SftConfig

    bare = tmp_path / "no-template"
    shutil.copytree(base_model, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer_config = json.loads((bare / "tokenizer_config.json").read_text())
    tokenizer_config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    with pytest.raises(ConfigError) as info:
        SftConfig.from_dict(cli_config(bare, SFT_MESSAGES, tmp_path / "run"))
    assert info.value.field == "chat_template" and "no chat template" in info.value.message
    assert SftConfig.from_dict(cli_config(bare, SFT_MESSAGES, tmp_path / "run", chat_template=CHATML_TEMPLATE))
