"""The rl stage on the tiny chat base and real Dolly prompts: with a rule reward the policy learns
(mean reward rises), with a reward model beside it both rewards are logged, every answer's rewards
reach the sample table, and a bad config names its field before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.training.fixtures import PREFERENCE, SFT_MESSAGES
from tests.training.helpers import SAMPLE_DATA, FakeReporter, parse_events, run_cli, write_config
from training.config import ConfigError
from training.rl_config import RlConfig

GSM8K = SAMPLE_DATA / "eval" / "gsm8k-test-300.jsonl"
ONE_LINE = r"\A[^\n]*\Z"  # \Z: Python's $ would also match before a final newline
"""A regex reward the tiny base can learn in a dozen steps: about half its answers hold a line break."""


def rl_config(base_model: Path, output_dir: Path, **overrides) -> RlConfig:
    """A few seconds on one CPU thread: 2 prompts x 4 answers of 16 tokens a step."""
    cfg = {
        "base_model": str(base_model), "dataset_path": str(SFT_MESSAGES), "output_dir": str(output_dir),
        "rewards": [{"kind": "regex", "weight": 1.0, "pattern": ONE_LINE}], "max_prompts": 48,
        "num_generations": 4, "max_completion_length": 16, "batch_size": 2, "max_steps": 12, "lr": 3e-3,
        "beta": 0.04, "checkpoint_every_steps": 0, "val_fraction": 0.1, "device": "cpu", "seed": 1,
    }
    return RlConfig.from_dict(cfg | overrides)


def _metrics(reporter: FakeReporter, key: str) -> list[float]:
    return [e["values"][key] for e in reporter.of_type("metric") if key in e["values"]]


def test_it_learns_a_rule_reward_and_streams_reward_kl_length_and_a_table_of_answers(base_model: Path, tmp_path: Path):
    from training.rl import run_rl

    reporter = FakeReporter()
    folder = run_rl(rl_config(base_model, tmp_path / "run"), reporter)

    rewards = _metrics(reporter, "reward/regex")
    assert len(rewards) == 12 and _metrics(reporter, "reward") == rewards  # one reward of weight 1: the total
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first and 1 - last <= (1 - first) / 2, rewards  # answers breaking the rule: at least halved
    assert all(k >= 0 for k in _metrics(reporter, "kl")) and len(_metrics(reporter, "kl")) == 12
    assert all(0 < n <= 16 for n in _metrics(reporter, "completion_length"))
    assert _metrics(reporter, "completions_per_s") and _metrics(reporter, "val_reward")
    samples = reporter.of_type("sample")
    assert len(samples) == 12 * 4  # each step's first group: its four answers
    assert all(set(s["rewards"]) == {"regex", "total"} and s["rewards"]["regex"] == ("\n" not in s["text"]) for s in samples)
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "checkpoint" and Path(artifact["path"]) == folder
    assert artifact["metadata"]["rewards"] == ["regex"] and artifact["metadata"]["beta"] == 0.04
    assert (folder / "model.safetensors").is_file() and reporter.of_type("status")[-1]["status"] == "succeeded"


def test_with_a_reward_model_beside_a_rule_both_are_logged_and_weighted(base_model: Path, tmp_path: Path):
    from training.rl import run_rl

    reporter = FakeReporter()
    rewards = [{"kind": "regex", "weight": 1.0, "pattern": ONE_LINE}, {"kind": "reward_model", "weight": 0.5}]
    cfg = rl_config(base_model, tmp_path / "run", rewards=rewards, reward_model=str(tiny_reward_model(base_model, tmp_path)),
                    method="lora", lora_r=4, max_steps=2, lr=1e-3)
    folder = run_rl(cfg, reporter)

    rule, model, total = _metrics(reporter, "reward/regex"), _metrics(reporter, "reward/reward_model"), _metrics(reporter, "reward")
    assert len(rule) == len(model) == len(total) == 2
    assert total == pytest.approx([r + 0.5 * m for r, m in zip(rule, model, strict=True)], abs=1e-4)
    for sample in reporter.of_type("sample"):
        scores = sample["rewards"]
        assert scores["total"] == pytest.approx(scores["regex"] + 0.5 * scores["reward_model"], abs=1e-4)
    assert folder.name == "merged" and (folder.parent / "adapter" / "adapter_model.safetensors").is_file()


def tiny_reward_model(base_model: Path, tmp_path: Path) -> Path:
    """A one-output classifier of random weights on the base's tokenizer: a reward model by its shape."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    folder = tmp_path / "reward-model"
    config = LlamaConfig(vocab_size=512, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, max_position_embeddings=256, num_labels=1, pad_token_id=1)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (base_model / name).is_file():
            shutil.copy(base_model / name, folder / name)
    return folder


def test_exact_match_reads_gsm8k_references_and_needs_a_dataset_that_has_them(base_model: Path, tmp_path: Path):
    from training.prompts import read_prompts
    from training.rl import as_dataset

    rows = as_dataset(read_prompts(GSM8K, "jsonl", 3), chat=True)
    assert rows[0]["reference"].endswith("#### 18") and rows[0]["prompt"][0]["role"] == "user"
    with pytest.raises(ConfigError) as e:
        rl_config(base_model, tmp_path, dataset_path=str(PREFERENCE), rewards=[{"kind": "exact_match"}])
    assert e.value.field == "rewards[0].kind" and "reference answers" in e.value.message


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"rewards": [{"kind": "bleu"}]}, "rewards[0].kind", "must be one of exact_match"),
        ({"rewards": [{"kind": "regex", "pattern": "("}]}, "rewards[0].pattern", "not a regular expression"),
        ({"rewards": [{"kind": "regex", "pattern": "a" * 501}]}, "rewards[0].pattern", "at most 500"),
        ({"rewards": [{"kind": "regex"}]}, "rewards[0].pattern", "is required"),
        ({"rewards": [{"kind": "regex", "pattern": {"x": [[[[]]]]}}]}, "rewards[0].pattern", "must be a string"),
        ({"rewards": [{"kind": "format", "format": "yaml"}]}, "rewards[0].format", "must be one of gsm8k"),
        ({"rewards": [{"kind": "length", "target": 10**30}]}, "rewards[0].target", "between 1 and"),
        ({"rewards": [{"kind": "length", "target": 8, "weight": 1e308 * 10}]}, "rewards[0].weight", "finite"),
        ({"rewards": [{"kind": "length", "target": 8, "weight": True}]}, "rewards[0].weight", "finite number"),
        ({"rewards": [{"kind": "length", "target": 8, "typo": 1}]}, "rewards[0].typo", "not a field of a length reward"),
        ({"rewards": [{"kind": "length", "target": 8}] * 9}, "rewards", "at most 8"),
        ({"rewards": []}, "rewards", "at least one"),
        ({"rewards": "exact_match"}, "rewards", "must be a list"),
        ({"rewards": ["regex"]}, "rewards[0]", "must be an object"),
        ({"rewards": [{"kind": "reward_model"}]}, "reward_model", "needs a reward model input"),
        ({"num_generations": 1}, "num_generations", "between 2 and 64"),
        ({"beta": -0.1}, "beta", "between 0 and 10"),
        ({"temperature": 0.0}, "temperature", "above 0"),
        ({"max_completion_length": 256}, "max_completion_length", "context"),
        ({"max_completion_length": 10**12}, "max_completion_length", "at most"),
        ({"method": "qlora"}, "method", "must be full or lora"),
    ],
)
def test_a_bad_config_names_its_field(base_model: Path, tmp_path: Path, changes, field, words):
    with pytest.raises(ConfigError) as e:
        rl_config(base_model, tmp_path, **changes)
    assert e.value.field == field and words in e.value.message, e.value


def test_a_reward_model_that_is_not_a_classifier_is_refused(base_model: Path, tmp_path: Path):
    with pytest.raises(ConfigError) as e:
        rl_config(base_model, tmp_path, reward_model=str(base_model), rewards=[{"kind": "reward_model"}])
    assert e.value.field == "reward_model" and "not a reward model" in e.value.message


def test_the_config_round_trips_through_json(base_model: Path, tmp_path: Path):
    cfg = rl_config(base_model, tmp_path)
    assert RlConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_a_stop_saves_a_checkpoint_and_a_resume_goes_on_from_it(base_model: Path, tmp_path: Path):
    from training.rl import run_rl

    stopped = FakeReporter(stop_at_step=2)
    small = {"num_generations": 2, "batch_size": 1, "max_completion_length": 8, "beta": 0.0, "max_prompts": 12}
    assert run_rl(rl_config(base_model, tmp_path / "run", max_steps=6, **small), stopped) is None
    last = stopped.of_type("status")[-1]
    assert last["status"] == "cancelled" and last["step"] == 3 and not stopped.of_type("artifact")
    (checkpoint,) = stopped.of_type("checkpoint")

    resumed = FakeReporter()
    folder = run_rl(rl_config(base_model, tmp_path / "run", max_steps=4, resume_from=checkpoint["path"], **small), resumed)
    assert resumed.of_type("status")[0]["summary"]["resumed_from_step"] == 3
    assert [e["step"] for e in resumed.of_type("metric") if "reward" in e["values"]] == [4]
    assert folder == (tmp_path / "run" / "checkpoint-4").resolve()


def test_the_command_line_refuses_a_bad_reward_before_any_work(base_model: Path, tmp_path: Path):
    cfg = rl_config(base_model, tmp_path / "run").to_dict() | {"rewards": [{"kind": "regex", "pattern": "(("}]}
    result = run_cli("rl", "--config", str(write_config(tmp_path / "run.json", cfg)))
    assert result.returncode == 2
    (error,) = [e for e in parse_events(result.stdout) if e["type"] == "error"]
    assert error["field"] == "rewards[0].pattern" and "not a regular expression" in error["message"]
