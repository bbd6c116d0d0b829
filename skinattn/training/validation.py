"""The validation numbers training monitors, computed with scikit-learn.

Full evaluation (per-class tables, confidence intervals, reports) is ``skinattn evaluate``'s job; this
module only gives the loop its early-stopping metric and the model card its validation summary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss, recall_score, roc_auc_score

# Direction of improvement of each metric training can monitor.
HIGHER_IS_BETTER: dict[str, bool] = {"val_loss": False, "balanced_accuracy": True, "macro_auc": True}


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean one-vs-rest ROC AUC over the classes that have both positives and negatives (NaN if none)."""
    aucs = []
    for k in range(probabilities.shape[1]):
        positives = labels == k
        if positives.any() and not positives.all():
            aucs.append(roc_auc_score(positives, probabilities[:, k]))
    return float(np.mean(aucs)) if aucs else math.nan


def validation_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Loss (plain cross-entropy, no class weights or smoothing), accuracy, balanced accuracy, macro AUC."""
    predictions = probabilities.argmax(axis=1)
    classes = list(range(probabilities.shape[1]))
    return {
        "val_loss": float(log_loss(labels, probabilities, labels=classes)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predictions)),
        "macro_auc": macro_auc(labels, probabilities),
    }


def per_class_recall(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Recall (sensitivity) of each class present in ``labels``."""
    predictions = probabilities.argmax(axis=1)
    present = sorted(set(labels.tolist()))
    recalls = recall_score(labels, predictions, labels=present, average=None, zero_division=0)
    return {class_names[k]: float(r) for k, r in zip(present, recalls)}


def is_improvement(metric: str, value: float, best: float | None, min_delta: float) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` in ``metric``'s direction (NaN never does)."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if HIGHER_IS_BETTER[metric] else value < best - min_delta
