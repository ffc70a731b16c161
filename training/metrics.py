"""Classification metrics in numpy: accuracy, per-class precision/recall/F1, macro-F1, the confusion
matrix and the majority-class baseline. No torch, no sklearn.

Conventions (sklearn's with `zero_division=0`): a class never predicted has precision 0, a class
absent from the truth has recall 0, and F1 is 0 when precision + recall is 0. Macro-F1 averages
over every label of the dataset, including one the validation split happens to lack.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_labels: int) -> np.ndarray:
    """`n_labels × n_labels` counts: row = true label id, column = predicted label id."""
    true, pred = _ids(y_true, n_labels), _ids(y_pred, n_labels)
    if len(true) != len(pred):
        raise ValueError(f"{len(true)} true labels but {len(pred)} predictions")
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def classification_report(
    y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    `y_true` and `y_pred` are label ids, indices into `labels`. JSON-ready: plain floats, ints, lists.
    """
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("no examples to score")
    correct = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    support = matrix.sum(axis=1)
    precision = _safe_divide(correct, predicted)
    recall = _safe_divide(correct, support.astype(np.float64))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {
        "accuracy": float(correct.sum() / total),
        "macro_f1": float(f1.mean()),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": matrix.tolist(),
    }


def majority_baseline(
    train_labels: Sequence[int], y_true: Sequence[int], labels: Sequence[str]
) -> dict[str, Any]:
    """What always answering the training split's most frequent label scores on `y_true`."""
    counts = np.bincount(_ids(train_labels, len(labels)), minlength=len(labels))
    majority = int(counts.argmax())  # ties go to the lowest id, so the baseline is deterministic
    report = classification_report(y_true, [majority] * len(y_true), labels)
    return {"label": labels[majority], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def _ids(values: Sequence[int], n_labels: int) -> np.ndarray:
    ids = np.asarray(values, dtype=np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= n_labels):
        raise ValueError(f"label ids must lie in 0..{n_labels - 1}")
    return ids


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
