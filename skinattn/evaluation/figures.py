"""Confusion matrix, ROC, training-curve and reliability-diagram figures as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through pyplot, so
no global backend or figure state is touched (safe in servers, threads and headless pipelines).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_curve

DPI = 120
# history.jsonl fields drawn by training_curves_figure, with their legend labels: losses on the left panel,
# rates in [0, 1] on the right one. Fields a history lacks are left out.
LOSS_CURVES: tuple[tuple[str, str], ...] = (("train_loss", "train loss"), ("val_loss", "validation loss"))
RATE_CURVES: tuple[tuple[str, str], ...] = (
    ("train_accuracy", "train accuracy"),
    ("accuracy", "val accuracy"),
    ("balanced_accuracy", "val balanced accuracy"),
    ("macro_auc", "val macro AUC"),
)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts, coloured by the row-normalised rate (recall per true class) so rare classes stay readable."""
    counts = np.asarray(matrix, dtype=np.int64)
    row_totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, row_totals, out=np.zeros(counts.shape, dtype=np.float64), where=row_totals > 0)
    size = 1.2 + 0.6 * len(class_names)
    figure = Figure(figsize=(size + 1.0, size))
    axes = figure.add_subplot()
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    axes.set_yticks(ticks, labels=list(class_names))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            colour = "white" if rates[i, j] > 0.6 else "black"
            axes.text(j, i, str(counts[i, j]), ha="center", va="center", color=colour, fontsize=8)
    return _png(figure)


def roc_png(y_true: np.ndarray, y_prob: np.ndarray, class_names: Sequence[str], aucs: Sequence[float | None]) -> bytes:
    """One-vs-rest ROC curve per class (classes without positives and negatives are skipped)."""
    figure = Figure(figsize=(6.0, 5.0))
    axes = figure.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(class_names))]
    for k, name in enumerate(class_names):
        positives = y_true == k
        if positives.all() or not positives.any():
            continue
        fpr, tpr, _ = roc_curve(positives.astype(np.int64), y_prob[:, k])
        auc = aucs[k]
        label = f"{name} (AUC {auc:.3f})" if auc is not None and not np.isnan(auc) else name
        axes.plot(fpr, tpr, color=colours[k], linewidth=1.5, label=label)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel("false positive rate (1 - specificity)")
    axes.set_ylabel("true positive rate (sensitivity)")
    axes.set_title("ROC curves, one vs rest")
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def _series(history: Sequence[Mapping[str, Any]], field: str) -> list[float]:
    """``field`` of every epoch as floats; missing or non-numeric values become NaN (a gap in the line)."""
    values = []
    for record in history:
        value = record.get(field)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        values.append(float(value) if numeric else math.nan)
    return values


def best_epoch(history: Sequence[Mapping[str, Any]]) -> int | None:
    """The epoch training kept as its model: the last one flagged ``improved`` (None if none is)."""
    improved = [int(r["epoch"]) for r in history if r.get("improved")]
    return improved[-1] if improved else None


def training_curves_figure(history: Sequence[Mapping[str, Any]], monitor: str | None = None) -> Figure:
    """Per-epoch losses (left) and accuracy / balanced accuracy / macro AUC (right) of a training history,
    with the best epoch marked on both; a third panel shows the learning rate when a schedule changed it.

    Returned as a Figure so that callers (and tests) can inspect the drawn lines; :func:`training_curves_png`
    renders it. ``monitor`` names the metric that chose the best epoch, for the marker's label.
    """
    if not history:
        raise ValueError("an empty training history has no curves to draw")
    epochs = [int(r["epoch"]) for r in history]
    learning_rates = _series(history, "lr")
    lr_changes = len({v for v in learning_rates if not math.isnan(v)}) > 1
    figure = Figure(figsize=(13.5 if lr_changes else 10.0, 4.0), layout="constrained")
    panels = figure.subplots(1, 3 if lr_changes else 2, squeeze=False)[0]
    marker = "o" if len(epochs) <= 40 else None
    for axes, curves, title, ylabel in (
        (panels[0], LOSS_CURVES, "Loss", "cross-entropy"),
        (panels[1], RATE_CURVES, "Accuracy and AUC", "fraction"),
    ):
        for field, label in curves:
            if any(field in r for r in history):
                style = "--" if field.startswith("train_") else "-"  # training-split figures dashed
                axes.plot(epochs, _series(history, field), style, marker=marker, markersize=3, linewidth=1.5, label=label)
        axes.set_title(title)
        axes.set_ylabel(ylabel)
    panels[1].set_ylim(0.0, 1.02)
    if lr_changes:
        panels[2].plot(epochs, learning_rates, marker=marker, markersize=3, color="C7", label="learning rate")
        panels[2].set_yscale("log")
        panels[2].set_title("Learning rate")
    best = best_epoch(history)
    for axes in panels:
        if best is not None:
            label = f"best epoch {best}" + (f" ({monitor})" if monitor else "")
            axes.axvline(best, color="grey", linestyle=":", linewidth=1.2, label=label)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(True, alpha=0.3)
        if axes.get_lines():
            axes.legend(loc="best", fontsize=8)
        else:
            axes.text(0.5, 0.5, "not in the history", ha="center", va="center", transform=axes.transAxes)
    return figure


def training_curves_png(history: Sequence[Mapping[str, Any]], monitor: str | None = None) -> bytes:
    """:func:`training_curves_figure` as PNG bytes."""
    return _png(training_curves_figure(history, monitor))


def _reliability_panel(axes: Any, bins: Sequence[Mapping[str, Any]], title: str) -> None:
    lower = np.array([b["lower"] for b in bins], dtype=np.float64)
    width = np.array([b["upper"] for b in bins], dtype=np.float64) - lower
    filled = np.array([b["count"] > 0 for b in bins])
    accuracy = np.array([b["accuracy"] if b["count"] else 0.0 for b in bins], dtype=np.float64)
    confidence = np.array([b["confidence"] if b["count"] else 0.0 for b in bins], dtype=np.float64)
    axes.bar(lower[filled], accuracy[filled], width=width[filled], align="edge", color="C0", edgecolor="white",
             label="accuracy")  # fmt: skip
    # The gap between what the model claims and what it gets right, per bin: the bars ECE averages.
    bottom = np.minimum(accuracy, confidence)[filled]
    axes.bar(lower[filled], np.abs(confidence - accuracy)[filled], bottom=bottom, width=width[filled], align="edge",
             color="C3", alpha=0.35, edgecolor="C3", hatch="//", label="gap to confidence")  # fmt: skip
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    # Images per bin, at the foot of each bar: a bin of three images can show any gap.
    for left, span, bin_ in zip(lower, width, bins):
        if bin_["count"]:
            axes.text(left + span / 2, 0.01, str(bin_["count"]), ha="center", va="bottom", fontsize=6, color="white")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("confidence (top-class probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)


def reliability_png(calibration: Mapping[str, Any]) -> bytes:
    """Reliability diagrams before (T = 1) and after temperature scaling, side by side, from an evaluation's
    ``calibration`` section (:func:`skinattn.evaluation.calibration.calibration_summary`)."""
    figure = Figure(figsize=(10.0, 4.4), layout="constrained")
    before, after = figure.subplots(1, 2)
    _reliability_panel(before, calibration["bins_uncalibrated"],
                       f"Uncalibrated (T = 1): ECE {calibration['ece_uncalibrated']:.3f}")
    _reliability_panel(after, calibration["bins"],
                       f"With the model's temperature (T = {calibration['temperature']:.3g}): ECE {calibration['ece']:.3f}")
    return _png(figure)


def recall_shift_png(
    class_names: Sequence[str], internal: Sequence[float | None], external: Sequence[float | None]
) -> bytes:
    """Per-class recall on the internal test split and on the external test set, as a dumbbell chart: one
    row per class, a line from one to the other, so that the classes that lose most stand out. A class
    missing from one set gets only the other marker and says so."""
    def value(v: float | None) -> float:
        return math.nan if v is None else float(v)

    figure = Figure(figsize=(6.5, 1.0 + 0.45 * len(class_names)))
    axes = figure.add_subplot()
    rows = np.arange(len(class_names))[::-1]  # first class on top, as in the tables
    for row, name, a, b in zip(rows, class_names, map(value, internal), map(value, external)):
        if not (math.isnan(a) or math.isnan(b)):
            axes.plot([a, b], [row, row], color="grey", linewidth=2, zorder=1)
        for x, colour in ((a, "C0"), (b, "C3")):
            if not math.isnan(x):
                axes.scatter([x], [row], color=colour, s=40, zorder=2)
        missing = [side for side, x in (("internal", a), ("external", b)) if math.isnan(x)]
        if missing:
            axes.text(1.01, row, f"not in {' / '.join(missing)}", va="center", fontsize=7, color="grey",
                      transform=axes.get_yaxis_transform())  # fmt: skip
    axes.scatter([], [], color="C0", label="internal test")
    axes.scatter([], [], color="C3", label="external test")
    axes.set_yticks(rows, labels=list(class_names))
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.7, len(class_names) - 0.3)
    axes.set_xlabel("recall (sensitivity) of the class")
    axes.set_title("Per-class recall: internal vs external test set")
    axes.grid(True, axis="x", alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _png(figure)
