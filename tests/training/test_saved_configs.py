"""Run configs saved by an earlier version still load, and resume.

tests/training/fixtures/configs-2026-12/ holds the JSON the stage configs of 2026-12-04 wrote (every
field, in their order), from the values the lab writes; `@NAME@` stands for a path of this machine.
A run made then is resumed from such a file plus `resume_from` (workers/supervisor.py), so each must
load as it is, and mean what it meant: its `to_dict` is the file again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.fixtures import SFT_MESSAGES
from tests.training.helpers import FakeReporter
from training.stages import STAGES

SAVED = Path(__file__).parent / "fixtures" / "configs-2026-12"
STAGE_OF = {
    "tokenizer": "tokenizer", "clean": "clean", "pretrain": "pretrain", "sft-full": "sft",
    "sft-lora": "sft", "classify": "classify", "generate": "generate",
}
TRAINERS = ("sft-full", "sft-lora", "classify")  # they resume from a Trainer's `checkpoint-N/`
ADDED_SINCE = {"eval_tasks": [], "sharding": "ddp"}
"""Fields a stage config gained after the files were saved, at the defaults that keep their meaning."""


@pytest.fixture
def paths(corpus, tokenizer_path, base_model, sms_spam_subset, tmp_path: Path) -> dict[str, str]:
    return {
        "CORPUS": str(corpus), "TOKENIZER": str(tokenizer_path), "SFT_DATASET": str(SFT_MESSAGES),
        "CLASSIFY_DATASET": str(sms_spam_subset), "OUTPUT_DIR": str(tmp_path / "run"),
        "BASE_MODEL": str(base_model),
    }


def meant(cfg, data: dict) -> dict:
    """What `data` means now: the file, and the fields added since at their defaults."""
    return data | {name: value for name, value in ADDED_SINCE.items() if hasattr(cfg, name)}


def saved(name: str, paths: dict[str, str]) -> dict:
    text = (SAVED / f"{name}.json").read_text(encoding="utf-8")
    for key, value in paths.items():
        text = text.replace(f"@{key}@", value)
    assert "\"@" not in text, f"a placeholder of {name}.json is not filled"
    return json.loads(text)


def test_every_stage_of_then_has_a_saved_config():
    """The stages that existed when the files were saved; a stage added since has no earlier runs."""
    assert set(STAGE_OF.values()) == {"tokenizer", "clean", "pretrain", "sft", "classify", "generate"} <= set(STAGES)
    assert sorted(p.stem for p in SAVED.glob("*.json")) == sorted(STAGE_OF)


@pytest.mark.parametrize("name", sorted(STAGE_OF))
def test_a_saved_config_loads_and_means_what_it_meant(name: str, paths: dict[str, str]):
    data = saved(name, paths)
    cfg = STAGES[STAGE_OF[name]].config.from_dict(data)
    assert cfg.to_dict() == meant(cfg, data)


@pytest.mark.parametrize("name", ["pretrain", *TRAINERS])
def test_a_saved_config_loads_with_resume_from(name: str, paths: dict[str, str], tmp_path: Path):
    data = saved(name, paths)
    checkpoint = tmp_path / "run" / ("checkpoint-10" if name in TRAINERS else "checkpoint-20")
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    cfg = STAGES[STAGE_OF[name]].config.from_dict(data | {"resume_from": str(checkpoint)})
    assert cfg.resume_from == str(checkpoint)
    assert cfg.to_dict() == meant(cfg, data) | {"resume_from": str(checkpoint)}


def test_a_saved_pretrain_config_resumes_a_stopped_run(paths: dict[str, str], run_dir: Path):
    """A run's second attempt: its saved config plus `resume_from`, as the worker writes it."""
    data = saved("pretrain", paths | {"OUTPUT_DIR": str(run_dir)})
    stage = STAGES["pretrain"]
    first = FakeReporter(stop_at_step=20)
    stage.run(stage.config.from_dict(data), first)
    assert [e["step"] for e in first.of_type("checkpoint")] == [20]

    second = FakeReporter()
    final = stage.run(stage.config.from_dict(data | {"resume_from": str(run_dir)}), second)
    assert second.of_type("status")[0]["step"] == 20
    metrics = second.of_type("metric")
    assert [e["step"] for e in metrics if "loss" in e["values"]] == [25, 30, 35, 40]
    assert final == run_dir / "checkpoint-40"
