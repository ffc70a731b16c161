"""Evaluation during training: each checkpoint a run saves is scored with its `eval_tasks` and the
scores come as metrics `eval/<label>/<metric>` at the checkpoint's step, from pretrain's own loop and
from the Trainer stages' callback; a bad task is refused naming the task and its field."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.training.helpers import FakeReporter, tiny_config
from training.checkpoint_evals import CheckpointEvals
from training.config import ConfigError
from training.pretrain import pretrain
from training.pretrain_config import PretrainConfig
from training.trainer_events import ReporterCallback


@pytest.fixture(scope="module")
def held_out(corpus: Path, tmp_path_factory) -> Path:
    """Twelve speeches of the corpus as a text dataset (jsonl), the evaluation's documents."""
    speeches = [block for block in corpus.read_text().split("\n\n") if len(block) > 200][-12:]
    path = tmp_path_factory.mktemp("held-out") / "held-out.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in speeches))
    return path


def task(held_out: Path, **overrides) -> dict:
    return {"label": "held", "dataset_path": str(held_out), "max_examples": 12, "context_length": 32,
            "bootstrap_samples": 10, **overrides}


@pytest.fixture(scope="module")
def evaluated_run(corpus: Path, tokenizer_path: Path, tokens_cache: Path, held_out: Path, tmp_path_factory) -> FakeReporter:
    out = tmp_path_factory.mktemp("evaluated") / "run"
    out.mkdir()
    for name in ("tokens.bin", "tokens.json"):
        shutil.copy(tokens_cache / name, out / name)
    cfg = tiny_config(corpus, tokenizer_path, out, max_steps=24, checkpoint_every_steps=8, eval_every=0,
                      eval_tasks=[task(held_out)])
    reporter = FakeReporter()
    assert pretrain(PretrainConfig.from_dict(cfg), reporter) == (out / "checkpoint-24").resolve()
    return reporter


def test_pretrain_scores_each_checkpoint_after_saving_it_and_the_perplexity_falls(evaluated_run):
    events = [e for e in evaluated_run.events if e["type"] in ("checkpoint", "metric")]
    scored = [(i, e) for i, e in enumerate(events) if "eval/held/perplexity" in e.get("values", {})]
    assert [e["step"] for _, e in scored] == [8, 16, 24]
    for i, e in scored:
        assert events[i - 1] == {"type": "checkpoint", "step": e["step"], "path": events[i - 1]["path"]}  # right after its save
        assert set(e["values"]) == {"eval/held/perplexity", "eval/held/nll_per_token"}
        assert e["values"]["eval/held/perplexity"] == pytest.approx(math.exp(e["values"]["eval/held/nll_per_token"]))
    perplexities = [e["values"]["eval/held/perplexity"] for _, e in scored]
    assert perplexities == sorted(perplexities, reverse=True) and perplexities[-1] < 0.9 * perplexities[0], perplexities


def test_the_trainer_stages_callback_scores_the_checkpoint_it_saved(evaluated_run, held_out, tmp_path):
    # A Trainer writes checkpoint-N under its output_dir before on_save: here, pretrain's checkpoint of step 8.
    saved = Path(evaluated_run.of_type("checkpoint")[0]["path"])
    shutil.copytree(saved, tmp_path / "checkpoint-8", ignore=shutil.ignore_patterns("optimizer.pt"))
    reporter = FakeReporter()
    callback = ReporterCallback(reporter, summary={}, checkpoint_evals=CheckpointEvals([task(held_out)], reporter))
    callback.on_save(SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=8), None)

    checkpoint, metric = reporter.events
    assert checkpoint == {"type": "checkpoint", "step": 8, "path": str((tmp_path / "checkpoint-8").resolve())}
    pretrain_scores = next(e["values"] for e in evaluated_run.of_type("metric") if e["step"] == 8 and "eval/held/perplexity" in e["values"])
    assert metric["step"] == 8 and metric["values"] == pytest.approx(pretrain_scores)  # the same checkpoint, the same scores


@pytest.mark.parametrize("eval_tasks, field, words", [
    ([{"dataset_path": "HELD"}], "eval_tasks[0].label", "must be 1-40 letters"),
    ([{"label": "a b", "dataset_path": "HELD"}], "eval_tasks[0].label", "must be 1-40 letters"),
    ([{"label": "x", "dataset_path": "HELD"}, {"label": "x", "dataset_path": "HELD"}], "eval_tasks[1].label", "labels two tasks"),
    ([{"label": "x"}], "eval_tasks[0].dataset_path", "names the dataset"),
    ([{"label": "x", "dataset_path": "HELD", "models": []}], "eval_tasks[0].models", "the checkpoint's own"),
    ([{"label": "x", "dataset_path": "HELD", "max_examples": 0}], "eval_tasks[0].max_examples", ""),
    ([{"label": "x", "dataset_path": "HELD", "shots": 3}], "eval_tasks[0].shots", "unknown key"),
    ([{"label": "x", "dataset_path": "SPAM", "dataset_format": "tsv"}], "eval_tasks[0].task", "scores a classifier"),
    ([{"label": "x", "dataset_path": "HELD", "task": "multiple_choice"}], "eval_tasks[0].task", "evaluated with perplexity"),
])
def test_a_bad_eval_task_is_refused_naming_the_task_and_its_field(corpus, tokenizer_path, held_out, sms_spam_subset, tmp_path,
                                                                   eval_tasks, field, words):
    tasks = json.loads(json.dumps(eval_tasks).replace('"HELD"', json.dumps(str(held_out)))
                       .replace('"SPAM"', json.dumps(str(sms_spam_subset))))
    with pytest.raises(ConfigError) as refused:
        PretrainConfig.from_dict(tiny_config(corpus, tokenizer_path, tmp_path, eval_tasks=tasks))
    assert refused.value.field == field and words in refused.value.message, refused.value
