"""The metrics laid out as the paper's tables, written as CSV and Markdown.

Table 1/2 layout (multi-class): one row per class, named by its upper-case code as in the paper (AKIEC,
BCC, ...), then ``Avg`` (macro) and ``W. Avg`` (support-weighted); columns ``Precision`` and ``AUC`` as in
the paper, then the other per-class metrics the issue asks for, and the support ``#`` last, as in the
paper (the average rows carry the total). Table 4 layout (binary view): one row with ``AUC``,
``Accuracy``, ``Sensitivity``, ``Specificity``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

ROW_HEADER = "Dis."
AVG_ROW = "Avg"
WEIGHTED_AVG_ROW = "W. Avg"
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Precision", "precision"),
    ("AUC", "auc"),
    ("Recall", "recall"),
    ("Specificity", "specificity"),
    ("F1", "f1"),
)
SUPPORT_COLUMN = "#"
BINARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AUC", "auc"),
    ("Accuracy", "accuracy"),
    ("Sensitivity", "sensitivity"),
    ("Specificity", "specificity"),
)


def class_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Paper Table 1/2: per-class rows, then Avg and W. Avg."""
    rows = []
    for name in metrics["classes"]:
        values = metrics["per_class"][name]
        rows.append({ROW_HEADER: name.upper()} | {col: values[key] for col, key in METRIC_COLUMNS} | {SUPPORT_COLUMN: values["support"]})
    for label, key in ((AVG_ROW, "macro_avg"), (WEIGHTED_AVG_ROW, "weighted_avg")):
        values = metrics[key]
        rows.append({ROW_HEADER: label} | {col: values[k] for col, k in METRIC_COLUMNS} | {SUPPORT_COLUMN: values["support"]})
    return pd.DataFrame(rows, columns=[ROW_HEADER, *(c for c, _ in METRIC_COLUMNS), SUPPORT_COLUMN])


def binary_table(metrics: Mapping[str, Any], model_name: str) -> pd.DataFrame | None:
    """Paper Table 4 for the binary view, or None when the metrics have none."""
    binary = metrics.get("binary")
    if binary is None:
        return None
    row = {"Networks": model_name} | {col: binary[key] for col, key in BINARY_COLUMNS}
    return pd.DataFrame([row], columns=["Networks", *(c for c, _ in BINARY_COLUMNS)])


def headline_values(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures in the order a reader should meet them: balanced accuracy and the macro
    averages first (every class counts the same), then accuracy and the support-weighted averages, which
    the majority class (nv in HAM10000) carries and which can read far better than the macro figures they
    hide. Names are those of ``metrics.json``'s confidence intervals."""
    return {
        "balanced_accuracy": metrics["balanced_accuracy"],
        "macro_precision": metrics["macro_avg"]["precision"],
        "macro_auc": metrics["macro_avg"]["auc"],
        "macro_f1": metrics["macro_avg"]["f1"],
        "accuracy": metrics["accuracy"],
        "weighted_precision": metrics["weighted_avg"]["precision"],
        "weighted_auc": metrics["weighted_avg"]["auc"],
    }


def headline_markdown(metrics: Mapping[str, Any], digits: int = 3) -> str:
    """One line of the headline figures (:func:`headline_values`), balanced accuracy and macro first, with
    their confidence intervals when there are any; table.md opens with it."""
    intervals = metrics.get("confidence_intervals", {}).get("intervals", {})
    parts = []
    for name, value in headline_values(metrics).items():
        ci = intervals.get(name)
        ci_text = "" if not ci or ci["low"] is None else f" ({_cell(ci['low'], digits)}–{_cell(ci['high'], digits)})"
        parts.append(f"{name.replace('_', ' ')} **{_cell(value, digits)}**{ci_text}")
    return " · ".join(parts) + "\n"


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table; numbers to ``digits`` places as in the paper, NaN as ``n/a``."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    align = "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + " |"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, align, *body]) + "\n"


def to_csv_text(table: pd.DataFrame) -> str:
    """CSV with full precision; undefined values are empty cells."""
    return table.to_csv(index=False, na_rep="")
