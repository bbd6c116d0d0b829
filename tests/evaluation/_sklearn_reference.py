"""Reference metrics computed here with scikit-learn, independently of skinattn.evaluation.metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)


def expected_from_sklearn(y: np.ndarray, probs: np.ndarray, k: int) -> dict:
    """The reference values, by scikit-learn calls other than those metrics.py makes where possible."""
    pred = probs.argmax(axis=1)
    labels = list(range(k))
    per_class = {}
    for c in labels:
        per_class[c] = {
            "precision": precision_score(y == c, pred == c, zero_division=0),
            "recall": recall_score(y == c, pred == c, zero_division=0),
            # specificity = recall of the negative class in the one-vs-rest problem
            "specificity": recall_score(y == c, pred == c, pos_label=False),
            "f1": f1_score(y == c, pred == c, zero_division=0),
            "auc": roc_auc_score(y == c, probs[:, c]),
            "support": int((y == c).sum()),
            "predicted": int((pred == c).sum()),
        }
    averages = {}
    for average in ("macro", "weighted"):
        weights = np.bincount(y, minlength=k) if average == "weighted" else None
        averages[average] = {
            "precision": precision_score(y, pred, labels=labels, average=average, zero_division=0),
            "recall": recall_score(y, pred, labels=labels, average=average, zero_division=0),
            "f1": f1_score(y, pred, labels=labels, average=average, zero_division=0),
            "auc": roc_auc_score(y, probs, multi_class="ovr", average=average, labels=labels),
            "specificity": np.average([per_class[c]["specificity"] for c in labels], weights=weights),
            "support": len(y),
        }
    return {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "per_class": per_class,
        "macro_avg": averages["macro"],
        "weighted_avg": averages["weighted"],
    }


def assert_metrics_equal_sklearn(metrics: dict, y: np.ndarray, probs: np.ndarray, names: list[str]) -> None:
    expected = expected_from_sklearn(y, probs, len(names))
    assert metrics["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
    assert metrics["balanced_accuracy"] == pytest.approx(expected["balanced_accuracy"], abs=1e-12)
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert metrics["num_samples"] == len(y)
    for c, name in enumerate(names):
        got = metrics["per_class"][name]
        # Every per-class key is checked: a metric added to the JSON without a reference here fails.
        assert set(got) == set(expected["per_class"][c])
        for key, value in expected["per_class"][c].items():
            assert got[key] == pytest.approx(value, abs=1e-12), (name, key)
    for block in ("macro_avg", "weighted_avg"):
        assert set(metrics[block]) == set(expected[block])
        for key, value in expected[block].items():
            assert metrics[block][key] == pytest.approx(value, abs=1e-9), (block, key)
