"""Steps of the champion/challenger end of the training pipeline: the production gate (the
``compare_with_production`` component of ``components/evaluation.py``) and registering the winner
(``components/registry.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skinattn.steps.evaluation import METRICS_FILE


def production_gate_step(evaluation_dir: str | Path, prepared: str | Path, registry_root: str, metric: str) -> str:
    """``"promote"`` or ``"keep"``: the verdict of :func:`skinattn.registry.compare_with_production` on the
    candidate's evaluation folder, with the reason printed to the step's log."""
    from skinattn.registry import Registry, compare_with_production

    verdict, reason = compare_with_production(Registry(registry_root), Path(evaluation_dir) / METRICS_FILE,
                                              prepared, metric)  # fmt: skip
    print(reason)
    return verdict


def register_and_promote(
    model_dir: str | Path, evaluation_dir: str | Path, prepared: str | Path, registry_root: str, metric: str, run_id: str
) -> dict[str, Any]:
    """Register the model with its test metrics, then make it production; returns version and decision.

    Called only after the gate (:func:`production_gate_step`) said promote. When production was measured on
    the same data (equal fingerprints), the registry's own race-safe comparison decides; otherwise the stored
    numbers are not comparable and the gate's decision (made on this test set) is applied with
    ``force=True``, which the production log records.
    """
    from skinattn.models.weights import read_card
    from skinattn.registry import Registry, fingerprint_manifest

    registry = Registry(registry_root)
    params = (read_card(model_dir).get("metadata") or {}).get("config") or {}
    fingerprint = fingerprint_manifest(prepared)
    version = registry.register(
        model_dir, Path(evaluation_dir) / METRICS_FILE, params=params, data_fingerprint=fingerprint, run_id=run_id
    )
    champion = registry.production()
    same_data = champion is not None and champion.data_fingerprint == fingerprint
    decision = registry.promote(version.version, metric, force=champion is not None and not same_data)
    print(f"registered {version.version} in {registry.uri}: {decision.reason}")
    return {"version": version.version, "promoted": decision.promoted, "reason": decision.reason}
