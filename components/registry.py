"""The register component (see components/data.py for the pattern).

Its ``registered_model`` output is the run's link to the registry (lineage): a ``system.Model`` artifact whose
metadata carry ``registry_uri`` (the version's record in the registry), the version, its test metrics, whether
it was promoted and the data fingerprint, and whose file is a copy of that record. The artifact's own URI stays
in the pipeline root: KFP's v2 launcher uploads every output to the pipeline root's bucket and prefix and fails
the task for a URI outside it (docs/pipelines.md, "Lineage to the registry").
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from skinattn_components.image import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def register(
    model: Input[Model],
    evaluation: Input[Artifact],
    data_fingerprint: str,
    registry_root: str,
    promotion_metric: str,
    run_id: str,
    registered_model: Output[Model],
    promotion_source: str = "internal",
) -> str:
    """Register the model (weights, card, test metrics, training config, data fingerprint, run id) and
    promote it to production; returns the new version name (``v7``). ``data_fingerprint`` is prepare's output:
    the prepared data set itself is not downloaded. ``registered_model`` records the version (see above).
    ``promotion_source``: internal or external, the test set the gate compared ``promotion_metric`` on."""
    from skinattn.steps import registry as steps

    outcome = steps.register_and_promote(model.path, evaluation.path, data_fingerprint, registry_root,
                                         promotion_metric, run_id, record_out=registered_model.path,
                                         source=promotion_source)  # fmt: skip
    registered_model.metadata.update(outcome["lineage"])
    return outcome["version"]
