"""The paper's Table 1 (ablation): per-class precision and AUC of several networks side by side.

Layout, as in the paper: one row per diagnosis (upper-case code), then ``Avg`` (macro) and ``W. Avg``
(support-weighted); a block of Precision columns, one per network, then a block of AUC columns in the
same network order, then the support ``#``. Networks are named ``<arch>`` or ``<arch> + SA``. A column
header is ``Precision <network>`` / ``AUC <network>`` (CSV and Markdown have one header row).

Every network must have been evaluated on the same test set: the supports must agree, else the table
would compare numbers that are not comparable, and it is refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.errors import DataError
from skinattn.evaluation.tables import AVG_ROW, ROW_HEADER, SUPPORT_COLUMN, WEIGHTED_AVG_ROW, class_table

ABLATION_METRICS: tuple[str, ...] = ("Precision", "AUC")


def network_name(run: dict[str, Any]) -> str:
    """``resnet50 + SA`` or ``resnet50``, from the ``run`` section of an evaluation's metrics.json."""
    return f"{run['arch']}{' + SA' if run.get('soft_attention') else ''}"


def ablation_table(evaluations: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Table 1 from the metrics dicts of several evaluations (each with its ``run`` section)."""
    if not evaluations:
        raise DataError("the ablation table needs at least one evaluation")
    names = [network_name(metrics["run"]) for metrics in evaluations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"networks evaluated more than once: {duplicates}; each configuration must appear once")
    tables = [class_table(metrics) for metrics in evaluations]
    rows = tables[0][ROW_HEADER].tolist()
    support = tables[0][SUPPORT_COLUMN].tolist()
    for name, table in zip(names, tables):
        if table[ROW_HEADER].tolist() != rows or table[SUPPORT_COLUMN].tolist() != support:
            raise DataError(
                f"{name} was evaluated on other classes or another test set than {names[0]} "
                f"(rows {table[ROW_HEADER].tolist()} / support {table[SUPPORT_COLUMN].tolist()} vs {rows} / {support})"
            )
    result = pd.DataFrame({ROW_HEADER: rows})
    for metric in ABLATION_METRICS:
        for name, table in zip(names, tables):
            result[f"{metric} {name}"] = table[metric].to_numpy()
    result[SUPPORT_COLUMN] = support
    return result


def ablation_table_from_folders(evaluation_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Table 1 from evaluation output folders (each holding the metrics.json of ``skinattn evaluate``)."""
    evaluations = []
    for folder in evaluation_dirs:
        path = Path(folder) / "metrics.json"
        if not path.is_file():
            raise DataError(f"{path}: no metrics.json in this evaluation folder")
        evaluations.append(json.loads(path.read_text(encoding="utf-8")))
    return ablation_table(evaluations)


__all__ = ["ABLATION_METRICS", "AVG_ROW", "WEIGHTED_AVG_ROW", "ablation_table", "ablation_table_from_folders", "network_name"]
