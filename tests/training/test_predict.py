"""classify_texts: what the worker answers the "classify typed text" box with."""

from __future__ import annotations

import pytest


def test_it_returns_the_dataset_labels_with_probabilities_summing_to_one(spam_classifier):
    from training.predict import classify_texts

    (artifact,) = spam_classifier.of_type("artifact")
    texts = ["FREE entry! Txt WIN to 80086 to claim your prize now", "Sorry, I'll call you later", "ok"]
    answers = classify_texts(artifact["path"], texts)
    assert len(answers) == 3
    for answer in answers:
        assert set(answer["probabilities"]) == {"ham", "spam"}
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)
    assert [a["label"] for a in answers[:2]] == ["spam", "ham"]
    assert classify_texts(artifact["path"], []) == []


def test_it_loads_a_model_once_per_folder(spam_classifier):
    from training import predict

    (artifact,) = spam_classifier.of_type("artifact")
    predict.classify_texts(artifact["path"], ["hello"])
    loads = predict._load.cache_info().misses
    predict.classify_texts(artifact["path"] + "/", ["again"])  # the same folder, spelled otherwise
    assert predict._load.cache_info().misses == loads
