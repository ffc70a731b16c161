"""Classification metrics and the validation split, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import classification_report, confusion_matrix, majority_baseline


def test_it_scores_a_three_class_case_computed_by_hand():
    # true a a a b b c, predicted a a b b c c
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    per_class = report["per_class"]
    assert per_class["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert per_class["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per_class["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_it_scores_a_label_never_seen_nor_predicted_as_zero_and_averages_it_in():
    report = classification_report([0, 0, 1], [0, 1, 1], ["a", "b", "c"])
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # a: P 1, R 1/2, F1 2/3; b: P 1/2, R 1, F1 2/3; c: 0
    assert report["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_it_scores_the_majority_baseline():
    # The training split's majority is b; always answering b on a b b a b:
    # accuracy 3/5; a never predicted (F1 0); b: P 3/5, R 1, F1 0.75.
    baseline = majority_baseline([0, 1, 1, 1], [0, 1, 1, 0, 1], ["a", "b"])
    assert baseline == pytest.approx({"label": "b", "accuracy": 0.6, "macro_f1": 0.375})


def test_it_refuses_ids_outside_the_labels_and_mismatched_lengths():
    with pytest.raises(ValueError, match="0..1"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        confusion_matrix([0, 1], [0], 2)


def test_it_splits_each_label_in_proportion_with_a_seed():
    from training.classify import stratified_split

    labels = np.array([0] * 90 + [1] * 10 + [2])  # label 2 has one example: it stays in training
    train, val = stratified_split(labels, 0.2, seed=7)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(101))
    assert np.bincount(labels[val], minlength=3).tolist() == [18, 2, 0]
    again_train, again_val = stratified_split(labels, 0.2, seed=7)
    assert again_val.tolist() == val.tolist() and again_train.tolist() == train.tolist()
    assert stratified_split(labels, 0.2, seed=8)[1].tolist() != val.tolist()
