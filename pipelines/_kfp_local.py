"""kfp.local (kfp 2.17) joins ``dsl.OneOf`` artifacts of If/Else branches: a shim, until kfp does.

The training and ablation pipelines join the outputs of ``train`` and ``train-trainjob`` with ``dsl.OneOf``
(pipelines/_trainjob.py). The KFP backend resolves such a DAG output to whichever branch ran; kfp.local 2.17
does so for parameters (``OrchestratorUtils.get_dag_output_parameters``, ``value_from_oneof``) but its
``get_dag_output_artifacts`` refuses any output with more than one artifact selector ("Expected 1 artifact in
ArtifactSelectorSpec. Got: 2"), so every local run of those pipelines would fail after the train step.

:func:`install` replaces that one method with the same rule kfp.local applies to parameters: of the
selectors, take the one whose producer ran (exactly one must). Outputs with one selector resolve as before.
``run_local`` installs it; installing twice is harmless.
"""

from typing import Any

_INSTALLED = "_skinattn_oneof_artifacts"


def _dag_output_artifacts(cls: Any, dag_outputs_spec: Any, io_store: Any) -> dict[str, Any]:
    outputs = {}
    for key, selector_spec in dag_outputs_spec.artifacts.items():
        found = []
        for selector in selector_spec.artifact_selectors:
            try:
                found.append(io_store.get_task_output(selector.producer_subtask, selector.output_artifact_key))
            except (KeyError, ValueError):  # that branch did not run (kfp.local's own test for parameters)
                continue
        if len(found) != 1:
            raise ValueError(f"DAG output artifact {key!r}: {len(found)} of its branches produced it, expected exactly one")
        outputs[key] = found[0]
    return outputs


def install() -> None:
    """Let kfp.local resolve ``dsl.OneOf`` artifact outputs (see the module docstring)."""
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    if getattr(OrchestratorUtils, _INSTALLED, False):
        return
    OrchestratorUtils.get_dag_output_artifacts = classmethod(_dag_output_artifacts)
    setattr(OrchestratorUtils, _INSTALLED, True)
