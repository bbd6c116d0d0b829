"""Metrics per subgroup of patients or lesions: sex, age band and anatomical site.

A classifier that is good on average can fail one group (HAM10000 has few acral or facial lesions and few
patients under 30). When the evaluated manifest carries the readers' metadata columns
(:data:`skinattn.data.summary.SUBGROUP_COLUMNS`), the evaluation's predictions are joined to them by
``image_id`` and accuracy, balanced accuracy and n are computed per group. Groups of fewer than
:data:`SMALL_N` images are kept but flagged: their figures swing with a handful of images and should not be
read as a difference between groups. Missing values form the group ``unknown``; nothing is dropped.

The result is ``metrics.json``'s ``subgroups`` section (the report's table and the model card read it)::

    {"available": true, "small_n": 30,
     "groups": {"sex": {"column": "sex", "rows": [{"group": "male", "n": 412, "accuracy": 0.83,
                                                   "balanced_accuracy": 0.61, "small": false}, ...]}, ...},
     "notes": [...]}
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from skinattn.data.summary import SUBGROUP_COLUMNS, subgroup_columns
from skinattn.errors import DataError
from skinattn.evaluation.metrics import balanced_accuracy

SMALL_N = 30
UNKNOWN = "unknown"
AGE_BANDS: tuple[str, ...] = ("<30", "30-49", "50-69", ">=70", UNKNOWN)


def age_band(value: str) -> str:
    """``<30``, ``30-49``, ``50-69``, ``>=70`` from an age in years (HAM10000 gives multiples of 5), else
    ``unknown`` (blank or not a number)."""
    try:
        age = float(str(value).strip())
    except ValueError:
        return UNKNOWN
    if math.isnan(age) or age < 0:
        return UNKNOWN
    if age < 30:
        return "<30"
    if age < 50:
        return "30-49"
    if age < 70:
        return "50-69"
    return ">=70"


def _category(value: str) -> str:
    text = str(value).strip().lower()
    return text if text else UNKNOWN


def _group_balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """:func:`skinattn.evaluation.metrics.balanced_accuracy` of one group, without scikit-learn's warning
    about a single label (a small group often holds one class and is always predicted as it; the value is
    still right)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="A single label was found")
        return balanced_accuracy(y_true, y_pred)


def subgroup_metrics(predictions: pd.DataFrame, rows: pd.DataFrame, source: str = "manifest") -> dict[str, Any]:
    """The ``subgroups`` section from ``predictions`` (image_id, label, prediction) and the evaluated manifest
    ``rows`` (image_id and whichever metadata columns it has), joined by image_id."""
    columns = subgroup_columns(rows.columns)
    if not columns:
        wanted = sorted({c for names in SUBGROUP_COLUMNS.values() for c in names})
        return {
            "available": False,
            "small_n": SMALL_N,
            "groups": {},
            "notes": [f"{source} has none of the metadata columns {wanted}: no subgroup metrics"],
        }
    metadata = rows[["image_id", *columns.values()]]
    try:
        joined = predictions[["image_id", "label", "prediction"]].merge(
            metadata, on="image_id", how="left", validate="one_to_one", indicator=True
        )
    except pd.errors.MergeError:
        repeated = metadata["image_id"][metadata["image_id"].duplicated()].iloc[0]
        raise DataError(f"{source}: image_id {repeated} appears more than once, so its metadata is ambiguous") from None
    unmatched = joined.index[joined["_merge"] != "both"]
    if len(unmatched):
        raise DataError(f"{source}: predicted image {joined['image_id'].iloc[unmatched[0]]} is not in the manifest")
    groups: dict[str, Any] = {}
    notes: list[str] = []
    for kind, column in columns.items():
        values = joined[column].fillna("")
        keys = values.map(age_band) if kind == "age" else values.map(_category)
        table = _group_rows(joined["label"].to_numpy(), joined["prediction"].to_numpy(), keys.to_numpy())
        order = {band: i for i, band in enumerate(AGE_BANDS)}
        table.sort(key=(lambda r: order[r["group"]]) if kind == "age" else (lambda r: (-r["n"], r["group"])))
        groups[kind] = {"column": column, "rows": table}
        small = [r["group"] for r in table if r["small"]]
        if small:
            notes.append(f"{kind}: group(s) {small} have fewer than {SMALL_N} images; their figures are unreliable")
    return {"available": True, "small_n": SMALL_N, "groups": groups, "notes": notes}


def _group_rows(labels: np.ndarray, predicted: np.ndarray, keys: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for group in sorted(set(keys)):
        members = keys == group
        y_true, y_pred = labels[members], predicted[members]
        rows.append({
            "group": str(group),
            "n": int(members.sum()),
            "accuracy": float(np.mean(y_true == y_pred)),
            "balanced_accuracy": _group_balanced_accuracy(y_true, y_pred),
            "small": bool(members.sum() < SMALL_N),
        })  # fmt: skip
    return rows


def subgroup_table(section: dict[str, Any]) -> pd.DataFrame:
    """One table of every subgroup (kind, group, n, accuracy, balanced accuracy, a ``small n`` flag), for
    the report and the model card; empty when no metadata was available."""
    records: list[dict[str, Any]] = []
    for kind, block in (section.get("groups") or {}).items():
        for row in block.get("rows", []):
            records.append({
                "subgroup": kind, "group": row["group"], "n": row["n"], "accuracy": row["accuracy"],
                "balanced accuracy": row["balanced_accuracy"], "note": f"n < {section.get('small_n', SMALL_N)}" if row.get("small") else "",
            })  # fmt: skip
    return pd.DataFrame.from_records(records, columns=["subgroup", "group", "n", "accuracy", "balanced accuracy", "note"])


__all__: Sequence[str] = ["AGE_BANDS", "SMALL_N", "age_band", "subgroup_metrics", "subgroup_table"]
