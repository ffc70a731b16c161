"""The generate stage: prompts × checkpoints × K samples into generations.jsonl, reproducibly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.fixtures import PREFERENCE, SFT_MESSAGES, SMS_SPAM
from tests.training.helpers import SAMPLE_DATA, FakeReporter
from training.config import ConfigError
from training.generate_config import GenerateConfig

KEYS = ["prompt_index", "prompt", "model", "artifact", "sample", "text"]
PROMPTS = ["ROMEO:", "JULIET: O Romeo, Romeo", "KING HENRY:"]


def _config(small_base_run: Path, out: Path, **overrides) -> dict:
    cfg = {
        "models": [{"path": str(small_base_run / "checkpoint-30"), "label": "early", "artifact": 7},
                   {"path": str(small_base_run / "checkpoint-60"), "label": "late", "artifact": None}],
        "prompts": PROMPTS, "samples_per_prompt": 2, "max_new_tokens": 12, "batch_size": 4,
        "seed": 3, "output_dir": str(out), "device": "cpu",
    }
    cfg.update(overrides)
    return cfg


def _run(cfg: dict, reporter: FakeReporter | None = None) -> tuple[Path | None, FakeReporter]:
    from training.generate import run_generate

    reporter = reporter or FakeReporter()
    return run_generate(GenerateConfig.from_dict(cfg), reporter), reporter


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_it_writes_every_sample_of_every_model_with_the_exact_keys(small_base_run, tmp_path):
    out = tmp_path / "run"
    path, reporter = _run(_config(small_base_run, out))
    assert path == out / "generations.jsonl"
    lines = _lines(path)
    assert len(lines) == 12 and all(list(line) == KEYS for line in lines)
    assert [(x["model"], x["artifact"], x["prompt_index"], x["sample"]) for x in lines] == [
        (model, artifact, p, s) for model, artifact in (("early", 7), ("late", None)) for p in range(3) for s in range(2)
    ]
    assert all(x["prompt"] == PROMPTS[x["prompt_index"]] and x["text"] for x in lines)
    assert len({x["text"] for x in lines}) == 12  # sampled, not greedy copies
    assert [p.name for p in out.iterdir()] == ["generations.jsonl"]  # no temporary file left

    running = reporter.of_type("status")[0]
    assert running["status"] == "running" and running["total_steps"] == 6
    progress = [m["values"]["progress"] for m in reporter.of_type("metric")]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert all(m["values"]["tokens_per_s"] > 0 for m in reporter.of_type("metric"))
    assert len(reporter.of_type("sample")) == 6  # the first three of each model
    (artifact,) = reporter.of_type("artifact")
    assert artifact["kind"] == "generations" and artifact["path"] == str(path.resolve())
    assert artifact["metadata"]["prompts"] == 3 and artifact["metadata"]["samples_per_prompt"] == 2
    assert [m["label"] for m in artifact["metadata"]["models"]] == ["early", "late"]
    assert artifact["metadata"]["settings"]["seed"] == 3
    assert reporter.events[-1]["status"] == "succeeded" and reporter.events[-1]["step"] == 6


def test_it_reproduces_each_response_from_its_seed_whatever_the_batch(small_base_run, tmp_path):
    first = _lines(_run(_config(small_base_run, tmp_path / "a"))[0])
    again = _lines(_run(_config(small_base_run, tmp_path / "b", batch_size=1))[0])
    assert [x["text"] for x in again] == [x["text"] for x in first]
    other_seed = _lines(_run(_config(small_base_run, tmp_path / "c", seed=4))[0])
    assert sum(x["text"] != y["text"] for x, y in zip(first, other_seed, strict=True)) >= 10


def test_it_applies_a_models_chat_template_and_stops_at_its_end_of_turn(base_model, small_base_run, tmp_path):
    cfg = _config(small_base_run, tmp_path / "chat", samples_per_prompt=1, models=[
        {"path": str(base_model), "label": "chat"}, {"path": str(small_base_run / "checkpoint-60"), "label": "raw"},
    ])
    _, reporter = _run(cfg)
    seen = {(s["prompt"]) for s in reporter.of_type("sample")}
    assert "<|im_start|>user\nROMEO:<|im_end|>\n<|im_start|>assistant\n" in seen  # what the chat model read
    assert "ROMEO:" in seen  # the model without a template reads the prompt as it is
    assert all("<|im_end|>" not in x["text"] for x in _lines(tmp_path / "chat" / "generations.jsonl"))

    _, plain = _run({**cfg, "output_dir": str(tmp_path / "plain"), "use_chat_template": False})
    assert "<|im_start|>" not in "".join(s["prompt"] for s in plain.of_type("sample"))


def test_it_takes_prompts_from_datasets_of_the_kinds_that_have_them(small_base_run, tmp_path):
    from training.datasets import iter_records
    from training.prompts import read_prompts

    first = next(iter_records(SFT_MESSAGES))
    (prompt,) = read_prompts(SFT_MESSAGES, "jsonl", 1)
    assert prompt.messages == first["messages"][:-1] and prompt.text == first["messages"][0]["content"]
    prompt_only = SAMPLE_DATA / "preference" / "hh-harmless-test-1811.prompt.jsonl"
    texts = [p.text for p in read_prompts(prompt_only, "jsonl", 2)]
    assert all(t.startswith("\n\nHuman:") and t.endswith("Assistant:") for t in texts)
    assert read_prompts(PREFERENCE, "jsonl", 1)[0].text.endswith("Assistant:")

    cfg = _config(small_base_run, tmp_path, prompts=[], prompts_path=str(SFT_MESSAGES), max_prompts=2,
                  samples_per_prompt=1, max_new_tokens=4)
    lines = _lines(_run(cfg)[0])
    assert [x["prompt_index"] for x in lines] == [0, 1, 0, 1]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"prompts": [], "prompts_path": str(SMS_SPAM), "prompts_format": "tsv"}, "dataset", "is a classification dataset"),
        ({"prompts_path": str(SFT_MESSAGES)}, "prompts", "not both"),
        ({"models": []}, "models", "at least one"),
        ({"models": [{"path": "/no/such/model", "label": "x"}]}, "models[0].path", "no model folder"),
        ({"max_new_tokens": 128}, "max_new_tokens", "no room"),
        ({"temperature": 0.0}, "samples_per_prompt", "greedy"),
        ({"top_p": 0.0}, "top_p", "above 0"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(small_base_run, tmp_path, changes, field, words):
    with pytest.raises(ConfigError) as e:
        GenerateConfig.from_dict(_config(small_base_run, tmp_path, **changes))
    assert e.value.field == field and words in e.value.message


def test_it_keeps_nothing_when_stopped(small_base_run, tmp_path):
    out = tmp_path / "run"
    path, reporter = _run(_config(small_base_run, out, batch_size=2), FakeReporter(stop_at_step=1))
    assert path is None
    assert reporter.events[-1]["status"] == "cancelled" and reporter.events[-1]["step"] == 1
    assert not reporter.of_type("artifact")
    assert list(out.iterdir()) == []  # no generations.jsonl, no partial file
