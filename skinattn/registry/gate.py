"""The production gate: does a candidate beat the production model on the SAME test set?

The metrics stored with production were measured on whatever test set existed when it was registered; a
candidate's metrics on today's test set are not comparable with them. So the gate downloads production and
evaluates it again on the candidate's test split, with the same code, and compares those two numbers.
A pipeline registers and promotes the candidate only when the gate says :data:`PROMOTE`.
"""

from __future__ import annotations

import os

from skinattn.registry.core import Registry
from skinattn.registry.metrics import compare, flatten_metrics, load_metrics

PROMOTE = "promote"
KEEP = "keep"


def compare_with_production(
    registry: Registry, candidate_metrics: str | os.PathLike[str], prepared: str | os.PathLike[str], metric: str
) -> tuple[str, str]:
    """``("promote" | "keep", reason)``: does the candidate beat production on ``metric``, on THIS test set?

    ``candidate_metrics`` is the candidate's evaluation ``metrics.json`` on the test split of ``prepared``
    (a prepared data set folder); production is evaluated on that same split. No production version yet
    means promote. A tie keeps the champion. ``metric`` is a flattened name of evaluation's metrics.json
    (``balanced_accuracy``, ``weighted_avg.auc``, ``macro_avg.precision``...); its direction comes from its
    name (:func:`skinattn.registry.metric_direction`).
    """
    candidate = flatten_metrics(load_metrics(candidate_metrics), str(candidate_metrics))
    champion = registry.production()
    if champion is None:
        compare(candidate, None, metric)  # still refuses a metric the candidate does not have
        return PROMOTE, f"{registry.uri} has no production version yet"
    # Imported here: the registry itself needs no torch; only the gate evaluates a model.
    from skinattn.evaluation.run import EvaluationSettings, evaluation_metrics

    # Numbers only: the champion's predictions, figures, overlays and report would be thrown away.
    settings = EvaluationSettings(split="test", n_bootstrap=0, progress=False)
    champion_metrics = flatten_metrics(evaluation_metrics(registry.fetch(champion), prepared, settings),
                                       f"production {champion.version}")  # fmt: skip
    result = compare(candidate, champion_metrics, metric, candidate_name="candidate",
                     champion_name=f"production version {champion.version}")  # fmt: skip
    verdict = PROMOTE if result.better else KEEP
    reason = (
        f"candidate {metric}={result.candidate:.6g} vs production {champion.version} {metric}={result.champion:.6g} "
        f"on the same test set ({result.direction} is better): {verdict}"
    )
    return verdict, reason
