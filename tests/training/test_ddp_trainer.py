"""The Trainer stages (sft, dpo) on two processes under torchrun (gloo on the CPU), as the worker
launches a run that asks for two devices: the same losses as one process at the same global batch,
rank 0 alone writes events and the model, a stop asked of one rank stops both at one step with a
checkpoint that resumes, and what would not train on two as on one (other stages, dpo's orpo and kto
losses, fsdp on CPUs) is refused, naming the field."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.fixtures import SFT_MESSAGES
from tests.training.helpers import REPO, FakeReporter, cli_env
from tests.training.test_ddp import _events, _ranks, _wait_for_step
from tests.training.test_dpo import dpo_config, short_pairs
from tests.training.test_sft import sft_config, subset
from training.config import ConfigError
from training.dpo import run_dpo
from training.sft import run_sft, setup

# Measured: over 6 steps sft's two curves differ by at most 5e-7 and dpo's by 7e-7; over 20 steps
# sft's drift to 5e-5 (float32 rounding, each rank's half batch and gloo's sum of gradients,
# compounding through the updates). A rank reading the whole global batch, or half of it, moves
# sft's loss by 1.7e-2 to 0.27 from the first step on (measured with batch 16 and 4 for 8).
# Within one epoch only: at an epoch's last, partial batch the ranks' loader (accelerate's
# even_batches) tops the batch up with the epoch's first examples, so that step differs (docs/fleet.md).
LOSS_TOLERANCE = 1e-3
SHORT = {"max_steps": 6, "log_every": 1, "eval_every": 0, "checkpoint_every_steps": 0, "warmup_steps": 1}


def _launch(stage: str, cfg: dict[str, Any], folder: Path) -> tuple[subprocess.Popen, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    config, events = folder / "config.json", folder / "events.jsonl"
    config.write_text(json.dumps(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "training", stage, "--config", str(config), "--events", str(events)]
    proc = subprocess.Popen(cmd, cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, events


def _run(stage: str, cfg: dict[str, Any], folder: Path) -> list[dict]:
    proc, events = _launch(stage, cfg, folder)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr[-3000:]
    return _events(events)


def _losses(events: list[dict]) -> list[float]:
    return [e["values"]["loss"] for e in events if e["type"] == "metric" and "loss" in e["values"]]


def _assert_one_stream(events: list[dict]) -> None:
    """Rank 0 wrote every event, once: seq rises by one, one `running` status."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["status"] for e in events if e["type"] == "status"][:1] == ["running"]
    assert sum(e.get("status") == "running" for e in events) == 1


@pytest.fixture(scope="module")
def conversations(tmp_path_factory) -> Path:
    """Enough that the runs below stay in their first epoch (20 steps of 8 are 0.74 of it, measured)."""
    return subset(SFT_MESSAGES, 360, tmp_path_factory.mktemp("ddp-sft-data"))


def test_sft_on_two_ranks_learns_as_one_process_at_the_same_global_batch(base_model, conversations, tmp_path):
    cfg = sft_config(base_model, conversations, tmp_path / "ddp", **SHORT).to_dict()
    ddp = _run("sft", cfg, tmp_path)
    single = FakeReporter()
    run_sft(sft_config(base_model, conversations, tmp_path / "single", **SHORT), single)

    _assert_one_stream(ddp)
    assert ddp[0]["summary"]["devices"] == 2 and single.of_type("status")[0]["summary"]["devices"] == 1
    assert ddp[-1]["status"] == "succeeded"
    ddp_losses, single_losses = _losses(ddp), single.losses()
    assert len(ddp_losses) == len(single_losses) == 6
    assert max(abs(a - b) for a, b in zip(ddp_losses, single_losses, strict=True)) < LOSS_TOLERANCE
    # The same examples were read: the tokens counted over both ranks are one process's.
    ddp_tokens = [e["values"]["tokens"] for e in ddp if e["type"] == "metric" and "tokens" in e["values"]]
    assert ddp_tokens == [e["values"]["tokens"] for e in single.of_type("metric") if "tokens" in e["values"]]
    # One checkpoint, the model written once (rank 0), each rank's RNG kept for a resume.
    checkpoint = tmp_path / "ddp" / "checkpoint-6"
    assert [p.name for p in (tmp_path / "ddp").glob("checkpoint-*")] == ["checkpoint-6"]
    assert {"model.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in checkpoint.iterdir()}
    (artifact,) = [e for e in ddp if e["type"] == "artifact"]
    assert artifact["path"] == str(checkpoint.resolve())


def test_dpo_with_lora_on_two_ranks_learns_as_one_process(base_model, tmp_path):
    pairs = short_pairs(80, tmp_path)
    overrides = {**SHORT, "method": "lora", "lora_r": 4, "warmup_steps": 0}
    ddp = _run("dpo", dpo_config(base_model, pairs, tmp_path / "ddp", **overrides).to_dict(), tmp_path)
    single = FakeReporter()
    run_dpo(dpo_config(base_model, pairs, tmp_path / "single", **overrides), single)

    _assert_one_stream(ddp)
    ddp_losses, single_losses = _losses(ddp), single.losses()
    assert len(ddp_losses) == len(single_losses) == 6
    assert abs(ddp_losses[0] - 0.6931) < 1e-3  # the policy starts as its reference: ln 2
    assert max(abs(a - b) for a, b in zip(ddp_losses, single_losses, strict=True)) < LOSS_TOLERANCE
    # Rank 0 alone wrote the adapter and the merged model, each once and whole.
    (artifact,) = [e for e in ddp if e["type"] == "artifact"]
    out = tmp_path / "ddp"
    assert artifact["path"] == str((out / "merged").resolve())
    assert {"adapter", "checkpoint-6", "merged"} <= {p.name for p in out.iterdir()}
    assert not [p.name for p in out.glob(".*tmp*")]  # no half-written folder left by a second writer
    assert (out / "merged" / "model.safetensors").is_file() and (out / "adapter" / "adapter_model.safetensors").is_file()


def test_a_stop_asked_of_one_rank_stops_both_at_one_step_and_its_checkpoint_resumes(base_model, conversations,
                                                                                    tmp_path):
    overrides = {**SHORT, "max_steps": 16}
    out = tmp_path / "ddp"
    proc, events = _launch("sft", sft_config(base_model, conversations, out, **overrides).to_dict(), tmp_path / "first")
    _wait_for_step(proc, events, 3)
    os.kill(_ranks(proc.pid)[1], signal.SIGINT)  # a stop asked of rank 1 alone
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    stopped = _events(events)
    stop = stopped[-1]["step"]
    assert stopped[-1]["status"] == "cancelled" and 3 <= stop < 16
    # Rank 0 stopped at rank 1's step (had it not, one rank would wait in a collective and torchrun fail).
    assert [e["step"] for e in stopped if e["type"] == "checkpoint"] == [stop]
    assert [p.name for p in out.glob("checkpoint-*")] == [f"checkpoint-{stop}"]

    resumed = _run("sft", sft_config(base_model, conversations, out, resume_from=str(out), **overrides).to_dict(),
                   tmp_path / "resumed")
    assert resumed[0]["summary"]["resumed_from_step"] == stop and resumed[-1]["status"] == "succeeded"
    # Stopped and resumed on two ranks, the curve is one process's that never stopped.
    single = FakeReporter()
    run_sft(sft_config(base_model, conversations, tmp_path / "single", **overrides), single)
    ddp_losses, single_losses = _losses(stopped) + _losses(resumed), single.losses()
    assert len(ddp_losses) == len(single_losses) == 16
    assert max(abs(a - b) for a, b in zip(ddp_losses, single_losses, strict=True)) < LOSS_TOLERANCE


@pytest.mark.parametrize("stage", ["reward", "classify", "rl"])
def test_a_stage_not_built_for_several_devices_is_refused_naming_devices(stage, tmp_path):
    # The refusal comes before the config is read: an empty one will do.
    events = _run_refused(stage, tmp_path)
    (error,) = events
    assert error["type"] == "error" and error["field"] == "devices"
    assert error["message"] == f"the {stage} stage runs on one device, not 2"


@pytest.mark.parametrize("loss_type", ["orpo", "kto"])
def test_a_dpo_loss_averaged_per_device_is_refused_on_two(base_model, tmp_path, loss_type):
    cfg = dpo_config(base_model, short_pairs(20, tmp_path), tmp_path / "run", loss_type=loss_type).to_dict()
    (error,) = _run_refused("dpo", tmp_path, cfg)
    assert error["type"] == "error" and error["field"] == "devices" and f"loss_type {loss_type}" in error["message"]
    assert not (tmp_path / "run").exists()  # refused before any work


def _run_refused(stage: str, tmp_path: Path, cfg: dict[str, Any] | None = None) -> list[dict]:
    proc, events = _launch(stage, cfg or {}, tmp_path)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "exitcode  : 2" in stderr  # a bad config, on every rank
    return _events(events)


def test_fsdp_is_refused_without_a_gpu(base_model, conversations, tmp_path):
    # transformers' Trainer shards only over CUDA devices (accelerate keeps its FSDP plugin for GPUs
    # and runs a CPU world as DDP): asked on CPUs, fsdp would quietly be ddp.
    with pytest.raises(ConfigError) as refused:
        sft_config(base_model, conversations, tmp_path / "run", sharding="fsdp")
    assert refused.value.field == "sharding" and "fsdp needs GPUs" in refused.value.message
    with pytest.raises(ConfigError) as refused:
        dpo_config(base_model, short_pairs(20, tmp_path), tmp_path / "run", sharding="fsdp", device="auto",
                   method="lora")
    assert refused.value.field == "sharding" and "use ddp" in refused.value.message
    if torch.cuda.is_available():
        return
    auto = sft_config(base_model, conversations, tmp_path / "run", sharding="fsdp", device="auto")
    with pytest.raises(ConfigError) as refused:
        setup(auto, FakeReporter())  # `auto` found no GPU
    assert refused.value.field == "sharding" and "fsdp needs GPUs" in refused.value.message
