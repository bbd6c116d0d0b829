"""Steps of the champion/challenger end of the training pipeline: the production gate (the
``compare_with_production`` component of ``components/evaluation.py``) and registering the winner
(``components/registry.py``), and what a pipeline run records about the registry version it registered or
used (its link to the registry: :func:`version_lineage`, :func:`write_version_record`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from skinattn.steps.evaluation import METRICS_FILE

if TYPE_CHECKING:
    from skinattn.registry import ModelVersion, Registry


def production_gate_step(
    evaluation_dir: str | Path, prepared: str | Path, registry_root: str, metric: str, source: str = "internal"
) -> str:
    """``"promote"`` or ``"keep"``: the verdict of :func:`skinattn.registry.compare_with_production` on the
    candidate's evaluation folder (``source``: its internal test split or its external test set), with the
    reason printed to the step's log."""
    from skinattn.registry import Registry, compare_with_production

    verdict, reason = compare_with_production(Registry(registry_root), Path(evaluation_dir) / METRICS_FILE,
                                              prepared, metric, source=source)  # fmt: skip
    print(reason)
    return verdict


def register_and_promote(
    model_dir: str | Path,
    evaluation_dir: str | Path,
    data_fingerprint: str,
    registry_root: str,
    metric: str,
    run_id: str,
    record_out: str | Path | None = None,
    source: str = "internal",
) -> dict[str, Any]:
    """Register the model with its test metrics, then make it production; returns version, decision and
    ``lineage`` (the metadata of the pipeline's artifact for this version, see :func:`version_lineage`).

    Called only after the gate (:func:`production_gate_step`) said promote. ``data_fingerprint`` is the one
    the prepare step computed (:func:`skinattn.steps.data.prepare_step`), so the prepared data set itself is
    not needed here. When production was measured on the same data (equal fingerprints), the registry's own
    race-safe comparison decides; otherwise the stored numbers are not comparable and the gate's decision
    (made on this test set) is applied with ``force=True``, which the production log records. With
    ``record_out``, the version's record is written there too (:func:`write_version_record`).

    ``source="external"``: the gate compared ``metric`` on the external test set, which the data fingerprint
    does not cover, so the champion's stored external number may come from another external set: the gate's
    decision is applied (forced) whenever there is a champion, and the log names ``external.<metric>``.
    """
    from skinattn.registry.gate import registry_metric_name
    from skinattn.models.weights import read_card
    from skinattn.registry import Registry

    registry = Registry(registry_root)
    params = (read_card(model_dir).get("metadata") or {}).get("config") or {}
    version = registry.register(
        model_dir, Path(evaluation_dir) / METRICS_FILE, params=params, data_fingerprint=data_fingerprint, run_id=run_id
    )
    champion = registry.production()
    same_data = champion is not None and champion.data_fingerprint == data_fingerprint and source == "internal"
    decision = registry.promote(version.version, registry_metric_name(metric, source),
                                force=champion is not None and not same_data)  # fmt: skip
    print(f"registered {version.version} in {registry.uri}: {decision.reason}")
    lineage = version_lineage(registry, version) | {"promoted": decision.promoted, "promotion": decision.reason}
    if record_out is not None:
        write_version_record(registry, version, record_out)
    return {"version": version.version, "promoted": decision.promoted, "reason": decision.reason, "lineage": lineage}


def version_lineage(registry: Registry, version: ModelVersion) -> dict[str, Any]:
    """What a pipeline run records about a registry version it registered or used, as artifact metadata
    (shown in the KFP UI, kept in ML Metadata): ``registry_uri`` (the version's record,
    :meth:`~skinattn.registry.Registry.location`), ``version``, ``registry``, the flattened test metrics (NaN
    already ``None``, so the metadata stay valid JSON for the launcher), ``data_fingerprint`` and ``run_id``."""
    return {
        "registry_uri": registry.location(version),
        "version": version.version,
        "registry": registry.uri,
        "metrics": dict(version.metrics),
        "data_fingerprint": version.data_fingerprint,
        "run_id": version.run_id,
    }


def write_version_record(registry: Registry, version: ModelVersion, out: str | Path) -> Path:
    """Write the version's record (files by sha256, metrics, params, fingerprint) and where it lives, as JSON.

    This small file is the content of the pipeline's artifact for the version: the artifact stays in the
    pipeline root, where KFP's launcher can write it, and names the registry location instead of being it
    (docs/pipelines.md, "Lineage to the registry", says why).
    """
    from skinattn.fileio import write_json

    write_json(out, {"registry_uri": registry.location(version), "registry": registry.uri} | version.to_dict())
    return Path(out)
