"""The classify stage on a tiny pretrained base and the SMS spam sample: it learns, beats the
majority-class baseline, reports the lab's events, and writes checkpoints transformers loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.fixtures import PREFERENCE, classify_config
from tests.training.helpers import FakeReporter
from training.classify_config import ClassifyConfig
from training.config import ConfigError

TRAIN_KEYS = {"loss", "lr", "grad_norm", "tokens_per_s", "tokens", "progress", "epoch"}
EVAL_KEYS = {"val_loss", "accuracy", "macro_f1"}


def _artifact(reporter: FakeReporter) -> dict:
    (artifact,) = reporter.of_type("artifact")
    return artifact


def test_it_beats_the_majority_class_baseline_on_held_out_macro_f1(spam_classifier):
    metadata = _artifact(spam_classifier)["metadata"]
    model, baseline = metadata["metrics"], metadata["baseline"]
    print(f"\nspam classifier on 200 held-out SMS: accuracy {model['accuracy']:.3f}, macro-F1 "
          f"{model['macro_f1']:.3f}; majority baseline ({baseline['label']}): accuracy "
          f"{baseline['accuracy']:.3f}, macro-F1 {baseline['macro_f1']:.3f}")
    assert baseline["label"] == "ham"
    assert model["macro_f1"] - baseline["macro_f1"] >= 0.2
    assert model["accuracy"] > baseline["accuracy"]
    assert model["per_class"]["spam"]["recall"] > 0.3  # it finds spam, not only ham


def test_it_learns_and_reports_train_and_eval_metrics(spam_classifier):
    metrics = spam_classifier.of_type("metric")
    train = [m for m in metrics if "loss" in m["values"]]
    assert [m["step"] for m in train] == list(range(10, 101, 10))
    assert all(set(m["values"]) == TRAIN_KEYS for m in train)
    losses = [m["values"]["loss"] for m in train]
    assert sum(losses[-3:]) / 3 < sum(losses[:2]) / 2 - 0.1, losses
    assert train[-1]["values"]["progress"] == 1.0 and train[-1]["values"]["tokens_per_s"] > 0
    tokens = [m["values"]["tokens"] for m in train]
    assert tokens == sorted(tokens) and tokens[0] > 0

    evals = [m for m in metrics if "val_loss" in m["values"]]
    assert [m["step"] for m in evals] == [50, 100]
    assert all(set(m["values"]) == EVAL_KEYS for m in evals)
    assert evals[-1]["values"]["val_loss"] < evals[0]["values"]["val_loss"]
    final = _artifact(spam_classifier)["metadata"]["metrics"]
    assert evals[-1]["values"]["macro_f1"] == pytest.approx(final["macro_f1"])


def test_it_reports_the_evaluation_in_the_artifact_and_the_summary(spam_classifier):
    artifact = _artifact(spam_classifier)
    metadata = artifact["metadata"]
    assert artifact["kind"] == "checkpoint" and metadata["task"] == "classification"
    assert metadata["labels"] == ["ham", "spam"]
    matrix = metadata["confusion_matrix"]
    per_class = metadata["metrics"]["per_class"]
    assert [sum(row) for row in matrix] == [per_class["ham"]["support"], per_class["spam"]["support"]]
    assert sum(map(sum, matrix)) == metadata["val_examples"] == 200  # 20% of 866 ham + 134 spam
    assert per_class["spam"]["support"] == 27
    assert per_class["spam"]["recall"] == pytest.approx(matrix[1][1] / 27)
    assert metadata["metrics"]["accuracy"] == pytest.approx((matrix[0][0] + matrix[1][1]) / 200)

    statuses = spam_classifier.of_type("status")
    assert [s["status"] for s in statuses] == ["running", "succeeded"]
    assert statuses[0]["total_steps"] == 100 and statuses[0]["summary"]["train_examples"] == 800
    summary = statuses[-1]["summary"]
    for key in ("task", "labels", "metrics", "confusion_matrix", "baseline"):
        assert summary[key] == metadata[key]


def test_it_writes_checkpoints_that_transformers_loads_and_predicts_with(spam_classifier):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    checkpoints = spam_classifier.of_type("checkpoint")
    assert [c["step"] for c in checkpoints] == [50, 100]
    final = Path(_artifact(spam_classifier)["path"])
    assert str(final) == checkpoints[-1]["path"] and final.name == "checkpoint-100"
    assert {"model.safetensors", "config.json", "tokenizer.json", "trainer_state.json"} <= {
        p.name for p in final.iterdir()
    }
    model = AutoModelForSequenceClassification.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert model.config.id2label == {0: "ham", 1: "spam"}
    assert model.config.pad_token_id == tokenizer.pad_token_id
    texts = ["URGENT! You have WON a 1000 cash prize. Call 09061701461 now to claim",
             "Ok, see you at home later tonight"]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    assert [model.config.id2label[i] for i in logits.argmax(-1).tolist()] == ["spam", "ham"]


def test_it_trains_lora_adapters_and_the_head_then_merges_them(small_base_model, sms_spam_subset, tmp_path):
    from training.classify import run_classify
    from training.predict import classify_texts

    cfg = classify_config(small_base_model, sms_spam_subset, tmp_path, method="lora", lora_r=8, lora_alpha=16,
                          max_steps=60, eval_every=0, checkpoint_every_steps=0)
    reporter = FakeReporter()
    merged = run_classify(ClassifyConfig.from_dict(cfg), reporter)
    assert merged == (tmp_path / "merged").resolve()

    summary = reporter.of_type("status")[0]["summary"]
    assert summary["method"] == "lora" and 0 < summary["trainable_params"] < summary["params"] / 3
    adapter = json.loads((tmp_path / "checkpoint-60" / "adapter_config.json").read_text())
    assert "score" in adapter["modules_to_save"]  # the new head trains whole, beside the adapters

    metadata = _artifact(reporter)["metadata"]
    assert metadata["metrics"]["macro_f1"] - metadata["baseline"]["macro_f1"] >= 0.2, metadata
    # The merged folder is the trained model: it scores the validation split as training reported.
    from training.classify import load_examples

    examples = load_examples(ClassifyConfig.from_dict(cfg))
    answers = classify_texts(str(merged), [examples.texts[i] for i in examples.val])
    truth = [examples.labels[examples.label_ids[i]] for i in examples.val]
    accuracy = sum(a["label"] == t for a, t in zip(answers, truth, strict=True)) / len(truth)
    assert accuracy == pytest.approx(metadata["metrics"]["accuracy"], abs=1 / len(truth))


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"dataset_path": str(PREFERENCE), "dataset_format": "jsonl"}, "dataset", "is a preference dataset"),
        ({"max_length": 129}, "max_length", "longer than the 128 positions"),
        ({"precision": "bf16"}, "precision", "needs a GPU"),
        ({"method": "qlora"}, "method", "full or lora"),
        ({"val_fraction": 0.5}, "val_fraction", "below 0.5"),
        ({"resume_from": "/nonexistent/run"}, "resume_from", "neither a checkpoint"),
    ],
)
def test_it_refuses_a_bad_config_naming_the_field(small_base_model, sms_spam_subset, tmp_path, changes, field, words):
    with pytest.raises(ConfigError) as e:
        ClassifyConfig.from_dict(classify_config(small_base_model, sms_spam_subset, tmp_path, **changes))
    assert e.value.field == field and words in e.value.message
