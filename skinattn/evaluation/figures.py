"""Confusion matrix and ROC figures as PNG bytes.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never through pyplot, so
no global backend or figure state is touched (safe in servers, threads and headless pipelines).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

DPI = 120


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
