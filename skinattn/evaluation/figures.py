"""Confusion matrix, ROC and training-curve figures as PNG bytes.

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
