"""The pretrain loop in-process, on a tiny model: exact resume, every weight trained, clear errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.training.helpers import FakeReporter, tiny_config
from training.checkpoint_layout import latest_checkpoint
from training.config import ConfigError
from training.pretrain import build_model, pretrain
from training.pretrain_config import PretrainConfig
from training.runtime import seed_everything
from training.tokenizer import load_tokenizer

CHECKPOINT_FILES = {
    "config.json", "generation_config.json", "model.safetensors",
    "tokenizer.json", "tokenizer_config.json", "optimizer.pt", "trainer_state.json",
}


def _run(cfg: dict, reporter: FakeReporter) -> Path | None:
    return pretrain(PretrainConfig.from_dict(cfg), reporter)


def _copy_run_dir(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        shutil.copy(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def straight_run(corpus: Path, tokenizer_path: Path, tokens_cache: Path, tmp_path_factory) -> tuple[dict, FakeReporter]:
    """12 steps without interruption: the reference the resume tests compare with."""
    out = _copy_run_dir(tokens_cache, tmp_path_factory.mktemp("straight") / "run")
    cfg = tiny_config(corpus, tokenizer_path, out)
    reporter = FakeReporter()
    assert _run(cfg, reporter) == (out / "checkpoint-12").resolve()
    return cfg, reporter


def test_it_resumes_a_stopped_run_to_the_same_loss(straight_run, run_dir: Path):
    cfg, straight = straight_run
    stopped = FakeReporter(stop_at_step=6)  # as if SIGINT arrived during step 6
    interrupted_cfg = {**cfg, "output_dir": str(run_dir)}
    assert _run(interrupted_cfg, stopped) is None
    assert stopped.of_type("status")[-1] == {"type": "status", "status": "cancelled", "step": 6,
                                             "summary": stopped.of_type("status")[-1]["summary"]}
    assert [e["step"] for e in stopped.of_type("checkpoint")] == [6]
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint-6", "tokens.bin", "tokens.json"]

    resumed = FakeReporter()
    final = _run({**interrupted_cfg, "resume_from": str(run_dir / "checkpoint-6")}, resumed)
    assert final == (run_dir / "checkpoint-12").resolve()
    assert resumed.of_type("status")[0]["step"] == 6
    assert [e["step"] for e in resumed.of_type("metric") if "loss" in e["values"]] == [8, 10, 12]

    # Same batches, same optimizer moments, same schedule: the curves join up exactly.
    assert stopped.losses() + resumed.losses() == pytest.approx(straight.losses(), rel=1e-5)
    assert resumed.val_losses()[-1] == pytest.approx(straight.val_losses()[-1], rel=1e-5)
    a = load_file(Path(cfg["output_dir"]) / "checkpoint-12" / "model.safetensors")
    b = load_file(run_dir / "checkpoint-12" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)


def test_it_trains_every_parameter(straight_run, corpus: Path, tokenizer_path: Path):
    cfg, _ = straight_run
    tokenizer, eos, pad = load_tokenizer(tokenizer_path)
    seed_everything(cfg.get("seed", 1337))  # pretrain seeds, then builds: the same initial weights
    initial = build_model(PretrainConfig.from_dict(cfg), tokenizer.get_vocab_size(), 0, 1, None).state_dict()
    final = load_file(Path(cfg["output_dir"]) / "checkpoint-12" / "model.safetensors")
    assert set(final) == {k for k in initial if k != "lm_head.weight"}  # the head is tied to the embeddings
    unchanged = [k for k in final if torch.equal(final[k], initial[k])]
    assert unchanged == []


def test_it_writes_a_self_describing_checkpoint(straight_run):
    cfg, reporter = straight_run
    folder = Path(cfg["output_dir"]) / "checkpoint-12"
    assert {p.name for p in folder.iterdir()} == CHECKPOINT_FILES
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["step"] == 12 and state["tokens_seen"] == 12 * 4 * 32
    assert state["config"] == PretrainConfig.from_dict(cfg).to_dict()
    assert set(state["rng"]) == {"python", "numpy"}
    extra = torch.load(folder / "optimizer.pt", weights_only=True)
    assert set(extra) == {"optimizer", "scheduler", "rng"}
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "checkpoint" and artifact["path"] == str(folder.resolve())
    assert artifact["metadata"]["params"] == 857_216 and artifact["metadata"]["preset"] == "tiny"
    assert artifact["metadata"]["val_loss"] == reporter.val_losses()[-1]
    assert latest_checkpoint(folder.parent) == folder


def test_it_continues_pretraining_from_a_checkpoint(straight_run, corpus, tokenizer_path, run_dir: Path):
    cfg, straight = straight_run
    reporter = FakeReporter()
    init = str(Path(cfg["output_dir"]) / "checkpoint-12")
    _run(tiny_config(corpus, tokenizer_path, run_dir, init_from=init, max_steps=2, warmup_steps=0,
                     log_every=1, lr=1e-4, eval_every=0), reporter)
    # A fresh model starts at ln(512) = 6.24; this one starts where the first run ended.
    assert reporter.losses()[0] < math.log(512) - 0.5
    assert reporter.losses()[0] == pytest.approx(straight.losses()[-1], abs=0.5)


def test_it_refuses_a_batch_larger_than_the_corpus(tmp_path: Path, tokenizer_path: Path):
    small = tmp_path / "small.txt"
    small.write_text("Now is the winter of our discontent\nMade glorious summer by this sun of York.\n\n" * 20)
    reporter = FakeReporter()
    with pytest.raises(ConfigError) as info:
        _run(tiny_config(small, tokenizer_path, tmp_path / "run", batch_size=64), reporter)
    assert info.value.field == "batch_size"
    assert "larger than the" in info.value.message and "training blocks of this corpus" in info.value.message
    assert reporter.of_type("status") == []  # refused before training started


def test_it_refuses_a_corpus_too_small_for_one_block(tmp_path: Path, tokenizer_path: Path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("Exit, pursued by a bear.\n")
    with pytest.raises(ConfigError) as info:
        _run(tiny_config(tiny, tokenizer_path, tmp_path / "run"), FakeReporter())
    assert info.value.field == "corpus_path" and "too few" in info.value.message


def test_it_refuses_a_missing_tokenizer(tmp_path: Path, corpus: Path):
    with pytest.raises(ConfigError) as info:
        _run(tiny_config(corpus, tmp_path / "nope.json", tmp_path / "run"), FakeReporter())
    assert info.value.field == "tokenizer_path"
