"""Classification metrics of the paper (Tables 1, 2 and 4), each one computed with scikit-learn.

Conventions, chosen so that a metric is never silently wrong:

- A class absent from the evaluated split has no recall, F1 or AUC: those are NaN (``null`` in JSON),
  with a note, and the class is left out of the macro and weighted averages (its weight would be 0 in
  the weighted average anyway; in the macro average it would count an undefined value).
- A class that is present but never predicted gets precision 0 (scikit-learn's ``zero_division=0``), as
  in ``classification_report``: the model failed it, which the averages should show.
- Specificity of class k is TN / (TN + FP) of the one-vs-rest confusion matrix (scikit-learn's
  ``multilabel_confusion_matrix``); it is defined even for an absent class.
- AUC is one-vs-rest on the probabilities; macro / weighted AUC average the per-class AUCs of the present
  classes, unweighted / weighted by support, which is what ``roc_auc_score(multi_class="ovr")`` does
  when every class is present.
- Balanced accuracy is the mean recall over the present classes (``balanced_accuracy_score``).
- Confidence intervals: stratified bootstrap (resampling within each true class, which keeps every
  class's support and so every metric defined), percentile intervals, seeded.
- Calibration: top-label expected calibration error over 15 equal-width bins, of the probabilities as
  given (with the model's temperature) and at T = 1 (see skinattn.evaluation.calibration).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from tqdm.auto import tqdm

from skinattn.errors import DataError
from skinattn.evaluation.calibration import calibration_summary

# The headline metrics that get bootstrap confidence intervals.
CI_METRICS: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "macro_auc", "weighted_auc", "macro_precision", "weighted_precision"
)


def _check_inputs(y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str]) -> None:
    if y_prob.ndim != 2 or y_prob.shape[1] != len(class_names):
        raise DataError(f"expected probabilities of shape (N, {len(class_names)}), got {y_prob.shape}")
    if len(y_true) != len(y_prob):
        raise DataError(f"{len(y_true)} labels for {len(y_prob)} rows of probabilities")
    if len(y_true) == 0:
        raise DataError("no predictions to evaluate")
    if y_true.min() < 0 or y_true.max() >= len(class_names):
        raise DataError(f"label indices must lie in [0, {len(class_names) - 1}]")
    if not np.isfinite(y_prob).all():
        raise DataError("the probabilities contain NaN or infinite values")


def _per_class_auc(onehot: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC per class; NaN where the class has no positives or no negatives."""
    aucs = np.full(onehot.shape[1], np.nan)
    for k in range(onehot.shape[1]):
        positives = int(onehot[:, k].sum())
        if 0 < positives < len(onehot):
            aucs[k] = roc_auc_score(onehot[:, k], y_prob[:, k])
    return aucs


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``.

    scikit-learn warns when a prediction names a class absent from ``y_true``; that is the documented
    convention here (absent classes are left out), so the warning is silenced for this call only.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred))


_balanced_accuracy = balanced_accuracy  # the former private name


def _headline(y_true: np.ndarray, y_prob: np.ndarray, num_classes: int) -> dict[str, float]:
    """The metrics that get confidence intervals, for one (re)sample."""
    y_pred = y_prob.argmax(axis=1)
    present = np.unique(y_true)
    onehot = np.eye(num_classes, dtype=np.int64)[y_true]
    aucs = _per_class_auc(onehot, y_prob)
    support = onehot.sum(axis=0)
    defined = ~np.isnan(aucs)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "macro_auc": float(np.mean(aucs[defined])) if defined.any() else math.nan,
        "weighted_auc": float(np.average(aucs[defined], weights=support[defined])) if defined.any() else math.nan,
        "macro_precision": float(precision_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_precision": float(
            precision_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)
        ),
    }


def stratified_resample_index(rng: np.random.Generator, by_class: Sequence[np.ndarray]) -> np.ndarray:
    """One stratified bootstrap draw: each class's member indices resampled with replacement to its own
    size, concatenated in the order of ``by_class``."""
    return np.concatenate([rng.choice(members, size=len(members), replace=True) for members in by_class])


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Central percentile interval of ``values`` at ``confidence``; (NaN, NaN) when ``values`` is empty.
    The caller filters out the values it does not want counted."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail]) if values.size else (math.nan, math.nan)
    return float(low), float(high)


def bootstrap_intervals(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    num_classes: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Percentile confidence intervals of the headline metrics from a stratified bootstrap."""
    if n_resamples < 1:
        raise DataError(f"bootstrap needs at least 1 resample, got {n_resamples}")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    by_class = [np.flatnonzero(y_true == k) for k in np.unique(y_true)]
    samples: dict[str, list[float]] = {name: [] for name in CI_METRICS}
    for _ in tqdm(range(n_resamples), desc="bootstrap", unit="resample", disable=not progress):
        index = stratified_resample_index(rng, by_class)
        for name, value in _headline(y_true[index], y_prob[index], num_classes).items():
            samples[name].append(value)
    intervals = {}
    for name, values in samples.items():
        low, high = percentile_interval(np.asarray([v for v in values if not math.isnan(v)]), confidence)
        intervals[name] = {"low": low, "high": high}
    return intervals


def binary_metrics(y_true: np.ndarray, y_prob: np.ndarray, positive: int, threshold: float = 0.5) -> dict[str, Any]:
    """Paper Table 4: AUC, accuracy, sensitivity and specificity of ``positive`` vs the rest at ``threshold``."""
    if not 0 < threshold < 1:
        raise DataError(f"threshold must lie in (0, 1), got {threshold}")
    is_positive = (y_true == positive).astype(np.int64)
    called = (y_prob[:, positive] >= threshold).astype(np.int64)
    both_present = 0 < is_positive.sum() < len(is_positive)
    return {
        "threshold": threshold,
        "auc": float(roc_auc_score(is_positive, y_prob[:, positive])) if both_present else math.nan,
        "accuracy": float(accuracy_score(is_positive, called)),
        "sensitivity": float(recall_score(is_positive, called, pos_label=1, zero_division=np.nan)),
        "specificity": float(recall_score(is_positive, called, pos_label=0, zero_division=np.nan)),
        "positives": int(is_positive.sum()),
        "negatives": int(len(is_positive) - is_positive.sum()),
    }


def compute_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    *,
    positive_class: str | None = None,
    threshold: float = 0.5,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    progress: bool = True,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """Every metric of the report, as a JSON-ready dict (NaN stands for undefined; see the module docstring).

    Args:
        y_true: (N,) true class indices into ``class_names``.
        y_prob: (N, K) class probabilities.
        positive_class: the class of the binary view (paper Table 4); default the second class of a
            two-class model, none for more classes.
        threshold: probability at or above which ``positive_class`` is called.
        n_bootstrap: bootstrap resamples for the confidence intervals (0 turns them off).
        temperature: the temperature ``y_prob`` were computed with (the model's; 1 = plain softmax), for the
            ``calibration`` section's before/after ECE.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    names = list(class_names)
    _check_inputs(y_true, y_prob, names)
    k_all = np.arange(len(names))
    y_pred = y_prob.argmax(axis=1)
    onehot = np.eye(len(names), dtype=np.int64)[y_true]
    support = onehot.sum(axis=0)
    present = k_all[support > 0]
    notes: list[str] = []

    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=k_all, zero_division=0)
    one_vs_rest = multilabel_confusion_matrix(y_true, y_pred, labels=k_all)  # [k] = [[tn, fp], [fn, tp]]
    tn, fp = one_vs_rest[:, 0, 0], one_vs_rest[:, 0, 1]
    specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)
    aucs = _per_class_auc(onehot, y_prob)

    per_class: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        absent = support[k] == 0
        per_class[name] = {
            "precision": math.nan if absent else float(precision[k]),
            "recall": math.nan if absent else float(recall[k]),
            "specificity": float(specificity[k]),
            "f1": math.nan if absent else float(f1[k]),
            "auc": float(aucs[k]),
            "support": int(support[k]),
            "predicted": int((y_pred == k).sum()),
        }
    absent_names = [names[k] for k in k_all if support[k] == 0]
    if absent_names:
        notes.append(
            f"class(es) {absent_names} do not occur in the evaluated split: their precision, recall, F1 and AUC "
            "are undefined (null) and they are left out of the macro and weighted averages"
        )
    if len(present) == 1:
        notes.append("only one class occurs in the evaluated split: no AUC is defined")
    never_predicted = [names[k] for k in present if (y_pred == k).sum() == 0]
    if never_predicted:
        notes.append(f"class(es) {never_predicted} are never predicted: their precision counts as 0")

    averages: dict[str, dict[str, float]] = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=present, average=average, zero_division=0)
        weights = support[present] if average == "weighted" else None
        defined = present[~np.isnan(aucs[present])]
        auc_weights = support[defined] if average == "weighted" else None
        averages[average] = {
            "precision": float(p),
            "recall": float(r),
            "specificity": float(np.average(specificity[present], weights=weights)),
            "f1": float(f),
            "auc": float(np.average(aucs[defined], weights=auc_weights)) if defined.size else math.nan,
            "support": int(support.sum()),
        }

    result: dict[str, Any] = {
        "num_samples": int(len(y_true)),
        "classes": names,
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "per_class": per_class,
        "macro_avg": averages["macro"],
        "weighted_avg": averages["weighted"],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=k_all).tolist(),
    }

    if positive_class is None and len(names) == 2:
        positive_class = names[1]
    if positive_class is not None:
        if positive_class not in names:
            raise DataError(f"positive class {positive_class!r} is not one of the model's classes {names}")
        result["binary"] = {"positive_class": positive_class} | binary_metrics(
            y_true, y_prob, names.index(positive_class), threshold
        )

    if n_bootstrap > 0:
        result["confidence_intervals"] = {
            "method": "stratified bootstrap, percentile",
            "confidence": confidence,
            "n_resamples": n_bootstrap,
            "seed": seed,
            "intervals": bootstrap_intervals(
                y_true, y_prob, len(names), n_resamples=n_bootstrap, confidence=confidence, seed=seed, progress=progress
            ),
        }
    result["calibration"] = calibration_summary(y_true, y_prob, temperature)
    result["notes"] = notes
    return result


def micro_roc(y_true: np.ndarray, y_prob: np.ndarray, max_points: int | None = None) -> dict[str, list[float]]:
    """The micro-averaged one-vs-rest ROC curve: every class's probabilities pooled into one binary problem.

    One curve that summarises all classes, for a display that shows a single curve (the KFP UI draws one
    per ClassificationMetrics). ``max_points`` thins it to at most that many points, evenly spaced along
    the curve, keeping the first and the last. The first threshold (infinite in scikit-learn) is reported as
    1.0 so that the result stays valid JSON.
    """
    onehot = np.eye(y_prob.shape[1], dtype=np.int64)[y_true]
    fpr, tpr, thresholds = roc_curve(onehot.ravel(), y_prob.ravel())
    if max_points is not None and len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    thresholds = np.minimum(thresholds, 1.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": thresholds.tolist()}


def to_json_ready(value: Any) -> Any:
    """Replace NaN by None (JSON ``null``) all through a nested structure: NaN is not valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: to_json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_ready(v) for v in value]
    return value
