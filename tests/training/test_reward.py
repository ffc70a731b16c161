"""The reward stage on the tiny chat base and real hh-rlhf pairs: it learns the training pairs, measures
and keeps the held-out pairs' rewards, uses a pair's margin, and writes a model the scorer reads the
way training read it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.training.fixtures import PREFERENCE, SFT_MESSAGES
from tests.training.helpers import FakeReporter
from training.checkpoint_layout import latest_checkpoint
from training.config import ConfigError
from training.reward_config import RewardConfig

PAIRS = 64


def reward_config(base_model: Path, dataset: Path, output_dir: Path, **overrides) -> RewardConfig:
    """A few seconds on one CPU thread: 48 training pairs seen five times, 16 held out."""
    cfg = {
        "base_model": str(base_model), "dataset_path": str(dataset), "output_dir": str(output_dir),
        "max_length": 64, "batch_size": 8, "max_steps": 30, "lr": 3e-3, "warmup_steps": 3, "log_every": 5,
        "eval_every": 15, "checkpoint_every_steps": 0, "val_fraction": 0.25, "device": "cpu",
    }
    return RewardConfig.from_dict(cfg | overrides)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 64 hh-rlhf harmless pairs, as the file has them (transcripts, no prompt field)."""
    path = tmp_path_factory.mktemp("pairs") / "hh-64.jsonl"
    path.write_text("\n".join(PREFERENCE.read_text(encoding="utf-8").splitlines()[:PAIRS]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(base_model: Path, pairs_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeReporter, Path]:
    from training.reward import run_reward

    reporter = FakeReporter()
    folder = run_reward(reward_config(base_model, pairs_file, tmp_path_factory.mktemp("reward")), reporter)
    assert folder is not None
    return reporter, folder


def _pairs(path: Path) -> list[dict]:
    from training.datasets import iter_records

    return list(iter_records(path, "preference"))


def _accuracy(scorer, pairs: list[dict]) -> float:
    prompts = [p["prompt"] for p in pairs]
    chosen, rejected = scorer.score(prompts, [p["chosen"] for p in pairs]), scorer.score(prompts, [p["rejected"] for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)


def test_it_learns_the_training_pairs_well_above_chance(trained, pairs_file):
    from training.reward import load_reward_scorer
    from training.sft import split_conversations

    reporter, folder = trained
    train, _ = split_conversations(_pairs(pairs_file), 0.25, 1337)  # the stage's split of the config's seed
    accuracy = _accuracy(load_reward_scorer(folder), train)
    print(f"\nreward model: pairwise accuracy on its {len(train)} training pairs {accuracy:.3f}")
    assert accuracy >= 0.8

    train_logs = [m["values"] for m in reporter.of_type("metric") if "loss" in m["values"]]
    assert [round(v["progress"], 2) for v in train_logs] == [round(s / 30, 2) for s in range(5, 31, 5)]
    assert train_logs[-1]["accuracy"] > train_logs[0]["accuracy"]  # streamed, and rising
    assert train_logs[-1]["loss"] < train_logs[0]["loss"] - 0.05
    assert train_logs[-1]["margin"] > train_logs[0]["margin"]


def test_it_measures_the_held_out_pairs_and_keeps_their_rewards(trained):
    reporter, _ = trained
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "checkpoint"
    metadata = artifact["metadata"]
    assert metadata["task"] == "reward" and metadata["train_pairs"] == 48 and metadata["val_pairs"] == 16
    held_out = metadata["held_out"]
    chosen, rejected = held_out["chosen"], held_out["rejected"]
    assert held_out["pairs"] == len(chosen) == len(rejected) == 16
    assert held_out["accuracy"] == sum(c > r for c, r in zip(chosen, rejected, strict=True)) / 16
    print(f"\nreward model: held-out accuracy {held_out['accuracy']:.3f} on 16 pairs")

    evals = [m for m in reporter.of_type("metric") if "val_loss" in m["values"]]
    assert [m["step"] for m in evals] == [15, 30]
    assert set(evals[-1]["values"]) == {"val_loss", "val_accuracy", "val_margin"}
    (done,) = [s for s in reporter.of_type("status") if s["status"] == "succeeded"]
    assert done["summary"]["held_out_accuracy"] == held_out["accuracy"]


def test_the_scorer_reads_rewards_as_training_did(trained, pairs_file):
    from training.reward import load_reward_scorer
    from training.sft import split_conversations

    reporter, folder = trained
    scorer = load_reward_scorer(folder)
    _, held_out = split_conversations(_pairs(pairs_file), 0.25, 1337)
    rewards = scorer.score([p["prompt"] for p in held_out], [p["chosen"] for p in held_out], batch_size=5)
    kept = reporter.of_type("artifact")[0]["metadata"]["held_out"]["chosen"]
    assert rewards == pytest.approx(kept, abs=1e-3)

    # A string prompt is the user's message: the same text, the same reward.
    as_text, as_messages = scorer.score(["Is tea good?", [{"role": "user", "content": "Is tea good?"}]], ["Yes.", "Yes."])
    assert as_text == as_messages and math.isfinite(as_text)
    with pytest.raises(ValueError, match="one response per prompt"):
        scorer.score(["a", "b"], ["x"])


def test_a_pairs_margin_enters_the_loss(base_model, tmp_path):
    """At the start the rewards are near 0, so a pair's loss is about -log σ(-margin): 2.13 for a
    margin of 2, against ln 2 without one."""
    from training.reward import setup

    rows = [json.loads(line) | {"margin": 2} for line in PREFERENCE.read_text(encoding="utf-8").splitlines()[:20]]
    data = tmp_path / "with-margin.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run = setup(reward_config(base_model, data, tmp_path / "run", val_fraction=0.4), FakeReporter())
    assert run.held_out[0]["margin"] == 2.0
    loss = run.trainer.evaluate()["eval_loss"]
    assert loss == pytest.approx(-math.log(1 / (1 + math.exp(2))), abs=0.1)


def test_lora_merges_the_adapters_and_keeps_the_trained_head(base_model, pairs_file, tmp_path):
    from training.reward import load_reward_scorer, run_reward

    reporter = FakeReporter()
    folder = run_reward(reward_config(base_model, pairs_file, tmp_path, method="lora", lora_r=4, max_steps=4,
                                      eval_every=0), reporter)
    assert folder == (tmp_path / "merged").resolve()
    assert not (folder / "adapter_config.json").exists()  # a plain model, not an adapter
    held_out = reporter.of_type("artifact")[0]["metadata"]["held_out"]
    pairs = _pairs(pairs_file)
    # The reloaded model gives the rewards the trained one gave: the head was saved, not re-drawn.
    from training.sft import split_conversations

    _, val = split_conversations(pairs, 0.25, 1337)
    rewards = load_reward_scorer(folder).score([p["prompt"] for p in val], [p["rejected"] for p in val])
    assert rewards == pytest.approx(held_out["rejected"], abs=1e-3)


def test_a_stop_midway_is_clean(base_model, pairs_file, tmp_path):
    from training.reward import run_reward

    reporter = FakeReporter(stop_at_step=2)
    assert run_reward(reward_config(base_model, pairs_file, tmp_path, log_every=1), reporter) is None
    assert [s["status"] for s in reporter.of_type("status")] == ["running", "cancelled"]
    assert reporter.of_type("artifact") == []
    (stopped,) = [s for s in reporter.of_type("status") if s["status"] == "cancelled"]
    assert latest_checkpoint(tmp_path) == tmp_path / f"checkpoint-{stopped['step']}"


def test_it_refuses_what_it_cannot_train_on(base_model, pairs_file, tmp_path):
    def field_of(**overrides) -> str:
        with pytest.raises(ConfigError) as e:
            reward_config(base_model, overrides.pop("dataset", pairs_file), tmp_path, **overrides)
        return e.value.field

    assert field_of(dataset=SFT_MESSAGES) == "dataset"
    assert field_of(max_length=100_000) == "max_length"
    assert field_of(method="qlora") == "method"
    assert field_of(method="lora", lora_target_modules=["nope"]) == "lora_target_modules"
    assert field_of(center_rewards=-1) == "center_rewards"
    bad = tmp_path / "bad-margin.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c", "margin": "lots"}) + "\n")
    from training.dataset_files import read_records

    with pytest.raises(ConfigError, match='line 1, field "margin": must be a number'):
        list(read_records(bad, "jsonl", "preference"))
