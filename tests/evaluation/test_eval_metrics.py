"""compute_metrics against scikit-learn, computed independently here on the same labels and probabilities."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from _sklearn_reference import assert_metrics_equal_sklearn

from skinattn.errors import DataError
from skinattn.evaluation.metrics import CI_METRICS, compute_metrics, micro_roc, to_json_ready

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _random_predictions(n: int, k: int, seed: int, skill: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities that lean towards the true class (so metrics are not trivial)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += skill
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


def test_every_metric_equals_sklearn_on_random_predictions():
    y, probs = _random_predictions(300, 7, seed=0)
    metrics = compute_metrics(y, probs, CLASSES, n_bootstrap=0, progress=False)
    assert_metrics_equal_sklearn(metrics, y, probs, CLASSES)
    assert 0.2 < metrics["accuracy"] < 0.95  # the fixture is neither hopeless nor perfect


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_absent_class_is_nan_with_a_note_and_left_out_of_averages():
    y, probs = _random_predictions(200, 4, seed=1)
    y[y == 2] = 0  # class 2 never occurs
    names = ["a", "b", "c", "d"]
    metrics = compute_metrics(y, probs, names, n_bootstrap=0, progress=False)
    absent = metrics["per_class"]["c"]
    assert absent["support"] == 0
    assert all(math.isnan(absent[key]) for key in ("precision", "recall", "f1", "auc"))
    assert absent["specificity"] == pytest.approx(recall_score(y == 2, probs.argmax(1) == 2, pos_label=False))
    assert any("['c']" in note and "do not occur" in note for note in metrics["notes"])
    present = [0, 1, 3]
    pred = probs.argmax(axis=1)
    assert metrics["macro_avg"]["recall"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert metrics["macro_avg"]["precision"] == pytest.approx(
        precision_score(y, pred, labels=present, average="macro", zero_division=0)
    )
    present_aucs = [roc_auc_score(y == c, probs[:, c]) for c in present]
    assert metrics["macro_avg"]["auc"] == pytest.approx(np.mean(present_aucs))
    # NaN is not JSON: it must become null and the result must serialise.
    assert json.loads(json.dumps(to_json_ready(metrics), allow_nan=False))["per_class"]["c"]["auc"] is None


def test_class_never_predicted_counts_precision_zero_with_a_note():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1]])
    metrics = compute_metrics(y, probs, ["x", "y", "z"], n_bootstrap=0, progress=False)
    assert metrics["per_class"]["z"]["precision"] == 0.0
    assert metrics["per_class"]["z"]["predicted"] == 0
    assert any("never predicted" in note for note in metrics["notes"])


def test_binary_view_matches_sklearn_at_the_threshold():
    y, probs = _random_predictions(250, 2, seed=2, skill=1.0)
    threshold = 0.3
    metrics = compute_metrics(y, probs, ["benign", "malignant"], threshold=threshold, n_bootstrap=0, progress=False)
    binary = metrics["binary"]
    called = probs[:, 1] >= threshold
    assert binary["positive_class"] == "malignant"  # default: the second class of a two-class model
    assert binary["auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert binary["accuracy"] == pytest.approx(accuracy_score(y == 1, called))
    assert binary["sensitivity"] == pytest.approx(recall_score(y == 1, called))
    assert binary["specificity"] == pytest.approx(recall_score(y == 1, called, pos_label=False))
    assert called.sum() != (probs.argmax(1) == 1).sum()  # the threshold really differs from arg-max here


def test_one_vs_rest_binary_view_for_a_multiclass_model():
    y, probs = _random_predictions(200, 7, seed=4)
    metrics = compute_metrics(y, probs, CLASSES, positive_class="mel", n_bootstrap=0, progress=False)
    mel = CLASSES.index("mel")
    assert metrics["binary"]["auc"] == pytest.approx(roc_auc_score(y == mel, probs[:, mel]))
    assert "binary" not in compute_metrics(y, probs, CLASSES, n_bootstrap=0, progress=False)
    with pytest.raises(DataError, match="positive class 'melanoma'"):
        compute_metrics(y, probs, CLASSES, positive_class="melanoma", n_bootstrap=0, progress=False)


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    y, probs = _random_predictions(300, 7, seed=5)
    run = lambda seed: compute_metrics(y, probs, CLASSES, n_bootstrap=60, seed=seed, progress=False)  # noqa: E731
    first, again, other = run(7), run(7), run(8)
    intervals = first["confidence_intervals"]["intervals"]
    assert set(intervals) == set(CI_METRICS)
    assert intervals == again["confidence_intervals"]["intervals"]
    assert intervals != other["confidence_intervals"]["intervals"]
    point = {
        "accuracy": first["accuracy"],
        "balanced_accuracy": first["balanced_accuracy"],
        "macro_auc": first["macro_avg"]["auc"],
        "weighted_auc": first["weighted_avg"]["auc"],
        "macro_precision": first["macro_avg"]["precision"],
        "weighted_precision": first["weighted_avg"]["precision"],
    }
    for name, value in point.items():
        assert intervals[name]["low"] < value < intervals[name]["high"], name
        assert intervals[name]["high"] - intervals[name]["low"] < 0.3, name


@pytest.mark.parametrize(
    ("y", "probs", "message"),
    [
        (np.array([0, 1]), np.ones((2, 3)) / 3, r"shape \(N, 2\)"),
        (np.array([0, 1, 1]), np.full((2, 2), 0.5), "3 labels for 2 rows"),
        (np.array([0, 2]), np.full((2, 2), 0.5), r"label indices must lie in \[0, 1\]"),
        (np.array([0, 1]), np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
        (np.array([], dtype=int), np.zeros((0, 2)), "no predictions"),
    ],
)
def test_bad_inputs_are_refused_with_a_reason(y, probs, message):
    with pytest.raises(DataError, match=message):
        compute_metrics(y, probs, ["a", "b"], n_bootstrap=0, progress=False)


def test_micro_roc_pools_every_class_and_thins_to_valid_json():
    y, probs = _random_predictions(300, 7, seed=0)
    full = micro_roc(y, probs)
    area = np.trapezoid(full["tpr"], full["fpr"])
    assert area == pytest.approx(roc_auc_score(np.eye(7)[y], probs, average="micro"))
    thinned = micro_roc(y, probs, max_points=50)
    assert len(thinned["fpr"]) <= 50 < len(full["fpr"])
    for key in ("fpr", "tpr", "threshold"):  # the ends of the curve are kept
        assert (thinned[key][0], thinned[key][-1]) == (full[key][0], full[key][-1])
    assert thinned["threshold"][0] == 1.0  # scikit-learn's infinite first threshold, made valid JSON
    json.dumps(thinned, allow_nan=False)


def test_headline_leads_with_balanced_accuracy_and_macro_figures():
    """Issue 14: a weighted precision carried by the majority class (0.71) must not read as the headline
    while the macro precision (0.39) sits out of sight: balanced accuracy and macro figures come first, in
    report.html and in table.md, and the JSON keys stay as they were."""
    from skinattn.evaluation.report import _headline_html
    from skinattn.evaluation.tables import headline_markdown, headline_values

    y, probs = _random_predictions(300, 7, seed=5)
    metrics = compute_metrics(y, probs, CLASSES, n_bootstrap=20, seed=0, progress=False)
    order = list(headline_values(metrics))
    assert order[0] == "balanced_accuracy"
    assert order.index("macro_precision") < order.index("weighted_precision")
    assert order.index("macro_auc") < order.index("weighted_auc") and order.index("macro_auc") < order.index("accuracy")
    assert {"accuracy", "balanced_accuracy", "macro_avg", "weighted_avg"} <= set(metrics)

    def positions(text: str, names: list[str]) -> list[int]:
        return [text.index(name) for name in names]

    names = ["balanced accuracy", "macro precision", "macro auc", "weighted precision", "weighted auc"]
    for text in (_headline_html(metrics), headline_markdown(metrics)):
        found = positions(text, names)
        assert found == sorted(found), text
        assert text.index("balanced accuracy") < text.index(">accuracy<" if "<td>" in text else " · accuracy ")
    line = headline_markdown(metrics)
    low = metrics["confidence_intervals"]["intervals"]["macro_precision"]["low"]
    assert f"macro precision **{metrics['macro_avg']['precision']:.3f}** ({low:.3f}" in line
