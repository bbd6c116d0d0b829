"""Internal vs external test set: the shift of each metric, and the side-by-side tables of the report.

A shift is external − internal: negative means the model does worse on the external set. It is undefined
(NaN, ``null`` in JSON) where either side is, e.g. the recall of a class the external set does not contain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from skinattn.evaluation.tables import headline_values

METRIC_COLUMN = "metric"
CLASS_COLUMN = "class"


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _difference(external: Any, internal: Any) -> float:
    a, b = _number(external), _number(internal)
    return math.nan if math.isnan(a) or math.isnan(b) else a - b


def metric_shift(internal: Mapping[str, Any], external: Mapping[str, Any]) -> dict[str, Any]:
    """metrics.json's ``shift`` block: ``per_class_recall`` (each class of the model) and ``headline``
    (the metrics of :func:`skinattn.evaluation.tables.headline_values`), each external − internal."""
    recall = {
        name: _difference(external["per_class"][name]["recall"], internal["per_class"][name]["recall"])
        for name in internal["classes"]
    }
    headline = _headline_shift(headline_values(internal), headline_values(external))
    return {"per_class_recall": recall, "headline": headline}


def _headline_shift(inside: Mapping[str, Any], outside: Mapping[str, Any]) -> dict[str, float]:
    return {name: _difference(outside[name], inside[name]) for name in inside}


def _interval(metrics: Mapping[str, Any], name: str) -> str:
    ci = ((metrics.get("confidence_intervals") or {}).get("intervals") or {}).get(name)
    if not ci or ci.get("low") is None or ci.get("high") is None:
        return ""
    low, high = float(ci["low"]), float(ci["high"])
    return "" if math.isnan(low) else f"{low:.3f} – {high:.3f}"


def confidence_header(metrics: Mapping[str, Any]) -> str:
    """``95% CI`` (the level the intervals were computed at), or ``CI (off)`` without bootstrap."""
    info = metrics.get("confidence_intervals")
    return f"{info['confidence']:.0%} CI" if info else "CI (off)"


def headline_side_by_side(
    internal: Mapping[str, Any], external: Mapping[str, Any], shift: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per headline metric: internal value and CI, external value and CI, and the shift. ``shift``:
    :func:`metric_shift`'s block for the same two sets, when the caller has it (its headline is reused)."""
    ci = confidence_header(internal)
    inside, outside = headline_values(internal), headline_values(external)
    differences = shift["headline"] if shift is not None else _headline_shift(inside, outside)
    rows = [
        {
            METRIC_COLUMN: name.replace("_", " "),
            "internal": _number(inside[name]),
            f"internal {ci}": _interval(internal, name),
            "external": _number(outside[name]),
            f"external {ci}": _interval(external, name),
            "shift": differences[name],
        }
        for name in inside
    ]
    return pd.DataFrame(rows)


def recall_side_by_side(internal: Mapping[str, Any], external: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class: recall internal and external, its shift, and the support of each set."""
    rows = []
    for name in internal["classes"]:
        inside, outside = internal["per_class"][name], external["per_class"][name]
        rows.append({
            CLASS_COLUMN: name.upper(),
            "internal recall": _number(inside["recall"]),
            "external recall": _number(outside["recall"]),
            "shift": _difference(outside["recall"], inside["recall"]),
            "internal #": int(inside["support"]),
            "external #": int(outside["support"]),
        })  # fmt: skip
    return pd.DataFrame(rows)


__all__ = ["confidence_header", "headline_side_by_side", "metric_shift", "recall_side_by_side"]
