"""The paper's Table 1 (ablation): per-class precision and AUC of several networks side by side.

Layout, as in the paper: one row per diagnosis (upper-case code), then ``Avg`` (macro) and ``W. Avg``
(support-weighted); a block of Precision columns, one per network, then a block of AUC columns in the
same network order, then the support ``#``. Networks are named ``<arch>`` or ``<arch> + SA``. A column
header is ``Precision <network>`` / ``AUC <network>`` (CSV and Markdown have one header row).

Every network must have been evaluated on the same test set: the supports must agree, else the table
would compare numbers that are not comparable, and it is refused.

Repeated ablations train every network with several training seeds (:func:`ablation_cells`); a network's
columns are then the mean over its seeds (each evaluation's ``run.training_seed`` tells them apart), and the
paired SA − baseline statistics are in :mod:`skinattn.evaluation.paired`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinattn.errors import DataError
from skinattn.evaluation.tables import AVG_ROW, ROW_HEADER, SUPPORT_COLUMN, WEIGHTED_AVG_ROW, class_table

ABLATION_METRICS: tuple[str, ...] = ("Precision", "AUC")
# Training seeds must stay valid seeds (skinattn.run_parameters.SEED_RANGE).
_SEED_MODULUS = 2**32 - 1


def training_seed(seed: int, replicate: int) -> int:
    """The training seed of replicate ``replicate`` (0, 1, ...) of a run whose split seed is ``seed``.

    Replicate 0 trains with ``seed`` itself, so a one-seed ablation and the training pipeline with the same
    seed train the same models; later replicates get seeds drawn from ``SeedSequence([seed, replicate])``,
    which are unrelated to each other and to ``seed`` (``seed + 1`` would be the next run's replicate 0).
    """
    if replicate == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(replicate)]).generate_state(1, np.uint64)[0] % _SEED_MODULUS)


def ablation_cells(configs: Sequence[dict[str, Any]], seeds: int, seed: int) -> list[dict[str, Any]]:
    """Every (configuration × replicate) of a repeated ablation, as ``{arch, soft_attention, seed}``.

    Both arms of an architecture share each replicate's training seed (same initial draws where the
    networks agree, same sample order and augmentation), so their difference is paired by seed as well as
    by test image. The split seed stays ``seed`` for every cell: one split, one test set.
    """
    if int(seeds) < 1:
        raise DataError(f"an ablation needs at least 1 seed per configuration, got {seeds}")
    return [
        {"arch": str(config["arch"]), "soft_attention": bool(config["soft_attention"]),
         "seed": training_seed(int(seed), replicate)}
        for replicate in range(int(seeds))
        for config in configs
    ]  # fmt: skip


def network_name(run: dict[str, Any]) -> str:
    """``resnet50 + SA`` or ``resnet50``, from the ``run`` section of an evaluation's metrics.json."""
    return f"{run['arch']}{' + SA' if run.get('soft_attention') else ''}"


def check_distinct_seeds(evaluations: Sequence[dict[str, Any]]) -> None:
    """Refuse a network evaluated twice with the same training seed (or twice without a recorded seed): a
    repeated cell would count one training twice in the seed means."""
    seen: dict[tuple[str, Any], int] = {}
    repeated = set()
    for metrics in evaluations:
        key = (network_name(metrics["run"]), metrics["run"].get("training_seed"))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            repeated.add(key)
    if repeated:
        described = ", ".join(
            f"{name} (training seed {'not recorded' if seed is None else seed})" for name, seed in sorted(repeated, key=str)
        )
        raise DataError(
            f"networks evaluated more than once with the same training seed: {described}; each (configuration, "
            "seed) must appear once"
        )


def ablation_table(evaluations: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Table 1 from the metrics dicts of several evaluations (each with its ``run`` section); a network
    evaluated with several training seeds gets the mean over its seeds."""
    if not evaluations:
        raise DataError("the ablation table needs at least one evaluation")
    check_distinct_seeds(evaluations)
    names = [network_name(metrics["run"]) for metrics in evaluations]
    tables = [class_table(metrics) for metrics in evaluations]
    rows = tables[0][ROW_HEADER].tolist()
    support = tables[0][SUPPORT_COLUMN].tolist()
    for name, table in zip(names, tables):
        if table[ROW_HEADER].tolist() != rows or table[SUPPORT_COLUMN].tolist() != support:
            raise DataError(
                f"{name} was evaluated on other classes or another test set than {names[0]} "
                f"(rows {table[ROW_HEADER].tolist()} / support {table[SUPPORT_COLUMN].tolist()} vs {rows} / {support})"
            )
    networks = list(dict.fromkeys(names))  # first-seen order, as the configurations were listed
    result = pd.DataFrame({ROW_HEADER: rows})
    for metric in ABLATION_METRICS:
        for network in networks:
            columns = [table[metric].to_numpy(dtype=np.float64) for name, table in zip(names, tables) if name == network]
            # NaN (undefined, e.g. no positives) stays NaN: it is the same for every seed on one test set
            result[f"{metric} {network}"] = np.mean(columns, axis=0)
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


__all__ = [
    "ABLATION_METRICS", "AVG_ROW", "WEIGHTED_AVG_ROW", "ablation_cells", "ablation_table", "ablation_table_from_folders",
    "check_distinct_seeds", "network_name", "training_seed",
]  # fmt: skip
