"""The register component (see components/data.py for the pattern)."""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

from skinattn_components.image import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    prepared: Input[Dataset],
    registry_root: str,
    promotion_metric: str,
    run_id: str,
) -> str:
    """Register the model (weights, card, test metrics, training config, data fingerprint, run id) and
    promote it to production; returns the new version name (``v7``)."""
    from skinattn.steps import registry as steps

    outcome = steps.register_and_promote(
        model.path, evaluation.path, prepared.path, registry_root, promotion_metric, run_id
    )
    return outcome["version"]
