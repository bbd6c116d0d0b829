"""The production gate: does a candidate beat the production model on the SAME test set?

The metrics stored with production were measured on whatever test set existed when it was registered; a
candidate's metrics on today's test set are not comparable with them. So the gate downloads production and
evaluates it again on the candidate's test split, with the same code, and compares those two numbers.
A pipeline registers and promotes the candidate only when the gate says :data:`PROMOTE`.

With ``source="external"`` the same holds for the external test set (issue 14): the candidate's metric is
read from the ``external`` section of its metrics.json, and production is evaluated on the rows of the
external manifest that the candidate's evaluation wrote (``<evaluation>/external/manifest.csv``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from skinattn.registry.core import Registry
from skinattn.registry.errors import RegistryError
from skinattn.registry.metrics import compare, flatten_metrics, load_metrics

PROMOTE = "promote"
KEEP = "keep"
# Which test set the gate compares on: the internal test split, or the external test set of issue 14.
PROMOTION_SOURCES: tuple[str, ...] = ("internal", "external")
EXTERNAL_SECTION = "external"  # metrics.json's block of the external test set (skinattn.evaluation.external)


def registry_metric_name(metric: str, source: str) -> str:
    """The name under which the registry stores ``metric`` of ``source``: ``balanced_accuracy`` or
    ``external.balanced_accuracy`` (a registered version keeps its whole metrics.json, flattened)."""
    return metric if source == "internal" else f"{EXTERNAL_SECTION}.{metric}"


def _candidate_section(raw: dict[str, Any], path: str, source: str) -> dict[str, Any]:
    if source not in PROMOTION_SOURCES:
        raise RegistryError(f"promotion source must be one of {list(PROMOTION_SOURCES)}, got {source!r}")
    if source == "internal":
        return raw
    section = raw.get(EXTERNAL_SECTION)
    if not isinstance(section, dict):
        raise RegistryError(
            f"{path}: the gate was told to compare on the external test set, but this evaluation has none "
            "(set external_test_uri, or promotion_source=internal)"
        )
    return section


def compare_with_production(
    registry: Registry,
    candidate_metrics: str | os.PathLike[str],
    prepared: str | os.PathLike[str],
    metric: str,
    *,
    source: str = "internal",
) -> tuple[str, str]:
    """``("promote" | "keep", reason)``: does the candidate beat production on ``metric``, on THIS test set?

    ``candidate_metrics`` is the candidate's evaluation ``metrics.json`` on the test split of ``prepared``
    (a prepared data set folder); production is evaluated on that same split. No production version yet
    means promote. A tie keeps the champion. ``metric`` is a flattened name of evaluation's metrics.json
    (``balanced_accuracy``, ``weighted_avg.auc``, ``macro_avg.precision``...); its direction comes from its
    name (:func:`skinattn.registry.metric_direction`). ``source="external"``: ``metric`` of the external test
    set, on which production is measured too (see the module docstring).
    """
    raw = _candidate_section(load_metrics(candidate_metrics), str(candidate_metrics), source)
    candidate = flatten_metrics(raw, str(candidate_metrics))
    champion = registry.production()
    if champion is None:
        compare(candidate, None, metric)  # still refuses a metric the candidate does not have
        return PROMOTE, f"{registry.uri} has no production version yet"
    # Imported here: the registry itself needs no torch; only the gate evaluates a model.
    from skinattn.evaluation.run import EvaluationSettings, evaluation_metrics

    # Numbers only: the champion's predictions, figures, overlays and report would be thrown away.
    settings = EvaluationSettings(split="test", n_bootstrap=0, progress=False)
    if source == "external":
        from skinattn.evaluation.external import EXTERNAL_DIR, external_metrics

        manifest = Path(candidate_metrics).parent / EXTERNAL_DIR
        measured = external_metrics(registry.fetch(champion), manifest, raw["classes"], settings)
    else:
        measured = evaluation_metrics(registry.fetch(champion), prepared, settings)
    champion_metrics = flatten_metrics(measured, f"production {champion.version}")
    result = compare(candidate, champion_metrics, metric, candidate_name="candidate",
                     champion_name=f"production version {champion.version}")  # fmt: skip
    verdict = PROMOTE if result.better else KEEP
    reason = (
        f"candidate {metric}={result.candidate:.6g} vs production {champion.version} {metric}={result.champion:.6g} "
        f"on the same {'external test set' if source == 'external' else 'test set'} ({result.direction} is better): "
        f"{verdict}"
    )
    return verdict, reason
