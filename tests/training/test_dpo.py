"""The dpo stage on the tiny lab base model and real hh-rlhf pairs: DPO's loss starts at ln 2 (the
policy is its reference), full and LoRA; the margin between chosen and rejected rewards grows; KTO
learns from unpaired labels; and the configs refuse what cannot run, naming the field."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.training.helpers import SAMPLE_DATA, FakeReporter
from training.config import ConfigError
from training.dpo_config import DPO_LOSS_TYPES, DpoConfig

PAIRS = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.prompt.jsonl"
HH = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.jsonl"
SFT = SAMPLE_DATA / "sft" / "dolly-2k.messages.jsonl"


def short_pairs(n: int, folder: Path) -> Path:
    """The first `n` pairs whose prompt and answers are short: the tiny model's 128 tokens hold them whole."""
    rows = []
    with PAIRS.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if len(r["prompt"]) < 160 and len(r["chosen"]) < 200 and len(r["rejected"]) < 200:
                rows.append(line)
            if len(rows) == n:
                break
    path = folder / "pairs.jsonl"
    path.write_text("".join(rows), encoding="utf-8")
    return path


def unpaired_labels(pairs: Path, folder: Path) -> Path:
    """The campaign export's unpaired shape (lab/feedback/export.py): chosen answers desirable, rejected not."""
    rows = []
    for line in pairs.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows += [{"prompt": r["prompt"], "completion": r["chosen"], "label": True, "item": 1, "model": "a"},
                 {"prompt": r["prompt"], "completion": r["rejected"], "label": False, "item": 1, "model": "b"}]
    path = folder / "both-bad-unpaired.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def dpo_config(base: Path, dataset: Path, output_dir: Path, **overrides: Any) -> DpoConfig:
    cfg = {
        "base_model": str(base), "dataset_path": str(dataset), "output_dir": str(output_dir), "device": "cpu",
        "max_length": 128, "batch_size": 8, "max_steps": 12, "warmup_steps": 0, "lr": 3e-3, "log_every": 3,
        "eval_every": 6, "val_fraction": 0.2, "checkpoint_every_steps": 0, "sample_tokens": 8,
        "schedule": "constant", "beta": 0.1,
    }
    return DpoConfig.from_dict(cfg | overrides)


def first_batch_loss(trainer) -> float:
    """The loss of the first training batch at step 0, before any update."""
    import torch

    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        return float(trainer.compute_loss(trainer.model, trainer._prepare_inputs(batch)))


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return short_pairs(80, tmp_path_factory.mktemp("dpo-data"))


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_loss_at_step_0_is_ln_2(base_model: Path, pairs: Path, tmp_path: Path, method: str):  # noqa: F811
    from training.dpo import setup

    run = setup(dpo_config(base_model, pairs, tmp_path / "run", method=method, lora_r=4), FakeReporter())
    assert abs(first_batch_loss(run.trainer) - math.log(2)) < 1e-4
    if method == "lora":  # the reference is the base with its adapters off: no second model
        assert run.trainer.ref_model is None and run.callback.summary["reference"] == "base with adapters disabled"


@pytest.fixture(scope="module")
def full_run(base_model: Path, pairs: Path, tmp_path_factory) -> dict[str, Any]:  # noqa: F811
    from training.dpo import run_dpo

    tmp = tmp_path_factory.mktemp("dpo-full")
    cfg = dpo_config(base_model, pairs, tmp / "run")
    reporter = FakeReporter()
    return {"cfg": cfg, "reporter": reporter, "artifact": run_dpo(cfg, reporter)}


def test_the_margin_between_chosen_and_rejected_rewards_grows(full_run):
    reporter = full_run["reporter"]
    assert [e["status"] for e in reporter.of_type("status")] == ["running", "succeeded"]
    train = [e["values"] for e in reporter.of_type("metric") if "loss" in e["values"]]
    assert len(train) == 4
    assert {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "tokens_per_s"} <= set(train[0])
    margins = [v["rewards/margins"] for v in train]
    assert margins[-1] > margins[0] + 0.5, margins
    assert train[-1]["loss"] < math.log(2) - 0.1, train
    evals = [e["values"] for e in reporter.of_type("metric") if "val_loss" in e["values"]]
    assert len(evals) == 2 and evals[-1]["val_rewards/margins"] > 0 and "val_ppl" not in evals[-1]
    samples = reporter.of_type("sample")
    assert [s["step"] for s in samples] == [6, 6, 12, 12] and samples[0]["prompt"].startswith("\n\nHuman:")


def test_it_exports_a_checkpoint_that_transformers_loads(full_run):
    from transformers import AutoModelForCausalLM

    (artifact,) = full_run["reporter"].of_type("artifact")
    assert artifact["kind"] == "checkpoint" and artifact["path"] == str(full_run["artifact"])
    meta = artifact["metadata"]
    assert meta["task"] == "preference" and meta["loss_type"] == "sigmoid" and meta["reference"] == "copy of the base"
    assert meta["metrics"]["rewards/margins"] > 0
    AutoModelForCausalLM.from_pretrained(full_run["artifact"])


def test_kto_learns_from_unpaired_labels(base_model: Path, pairs: Path, tmp_path: Path):  # noqa: F811
    from training.dpo import run_dpo

    labels = unpaired_labels(pairs, tmp_path)
    cfg = dpo_config(base_model, labels, tmp_path / "run", loss_type="kto", method="lora", lora_r=4, lr=1e-2,
                     max_steps=6, eval_every=0)
    reporter = FakeReporter()
    artifact = run_dpo(cfg, reporter)
    assert artifact is not None and artifact.name == "merged"
    train = [e["values"] for e in reporter.of_type("metric") if "loss" in e["values"]]
    assert "kl" in train[0] and train[-1]["rewards/margins"] > train[0]["rewards/margins"], train
    assert reporter.of_type("status")[0]["summary"]["data"] == "unpaired"


def test_a_stop_mid_way_saves_a_checkpoint_and_registers_nothing(base_model: Path, pairs: Path, tmp_path: Path):
    from training.dpo import run_dpo

    cfg = dpo_config(base_model, pairs, tmp_path / "run", method="lora", lora_r=4, log_every=1, max_steps=8)
    reporter = FakeReporter(stop_at_step=2)
    assert run_dpo(cfg, reporter) is None
    assert reporter.of_type("status")[-1]["status"] == "cancelled" and not reporter.of_type("artifact")
    (checkpoint,) = reporter.of_type("checkpoint")  # asked after step 2's metric: the loop ends step 3 and saves
    assert checkpoint["step"] == 3 and (Path(checkpoint["path"]) / "adapter_model.safetensors").is_file()


def test_the_dpo_loss_types_are_trls_own():
    import re

    from trl import DPOConfig

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    assert set(DPO_LOSS_TYPES) == set(re.findall(r"`'(\w+)'`", help_text))


@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"loss_type": "dpo++"}, "loss_type", "must be sigmoid"),
    ({"loss_type": "kto", "batch_size": 1}, "batch_size", "at least 2"),
    ({"loss_type": "exo_pair"}, "label_smoothing", "above 0"),
    ({"beta": 0.0}, "beta", "above 0"),
    ({"beta": 1e9}, "beta", "at most 100"),
    ({"method": "qlora"}, "method", "must be full or lora"),
    ({"method": "lora", "reference_model": "SELF"}, "reference_model", "is the LoRA policy itself"),
    ({"reference_model": "SELF"}, "reference_model", "is the policy itself"),
    ({"loss_type": "orpo", "reference_model": "SELF"}, "reference_model", "orpo has no reference"),
    ({"max_length": 100_000}, "max_length", "256"),
    ({"lora_target_modules": ["nope"], "method": "lora"}, "lora_target_modules", "not a linear layer"),
])
def test_it_refuses_what_cannot_run(base_model: Path, pairs: Path, tmp_path: Path, overrides, field, words):
    overrides = {k: str(base_model) if v == "SELF" else v for k, v in overrides.items()}
    with pytest.raises(ConfigError) as e:
        dpo_config(base_model, pairs, tmp_path / "run", **overrides)
    assert e.value.field == field and words in e.value.message, e.value


def test_it_refuses_the_wrong_kind_of_data_and_unpaired_labels_for_a_paired_loss(base_model: Path, pairs: Path,
                                                                                   tmp_path: Path):
    with pytest.raises(ConfigError, match="is a sft dataset; the dpo stage needs a preference dataset") as e:
        dpo_config(base_model, SFT, tmp_path / "run")
    assert e.value.field == "dataset"
    labels = unpaired_labels(pairs, tmp_path)
    with pytest.raises(ConfigError, match="holds unpaired labels .* use loss_type kto") as e:
        dpo_config(base_model, labels, tmp_path / "run", loss_type="ipo")
    assert e.value.field == "dataset"
    dpo_config(base_model, labels, tmp_path / "run", loss_type="kto")  # what kto is for
    dpo_config(base_model, HH, tmp_path / "run", loss_type="kto")  # pairs: each becomes two labelled rows


def test_a_bad_label_names_its_line(base_model: Path, pairs: Path, tmp_path: Path):
    from training.dpo_config import read_rows

    labels = unpaired_labels(pairs, tmp_path)
    lines = labels.read_text().splitlines()
    lines[2] = json.dumps(json.loads(lines[2]) | {"label": "yes"})
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match='line 3, field "label": must be true .* not "yes"'):
        read_rows(labels, "jsonl")


def test_a_reference_with_another_vocabulary_is_refused(base_model: Path, pairs: Path, tmp_path: Path):
    other = tmp_path / "other"
    shutil.copytree(base_model, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(config | {"vocab_size": config["vocab_size"] * 2}))
    with pytest.raises(ConfigError, match="the reference must share the policy's tokenizer") as e:
        dpo_config(base_model, pairs, tmp_path / "run", reference_model=str(other))
    assert e.value.field == "reference_model"
