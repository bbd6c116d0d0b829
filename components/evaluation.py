"""Evaluation components: evaluate on the test split, the champion/challenger gate, the ablation table.

See components/data.py for the pattern. ``compare_with_production`` has ONE return value on purpose:
``dsl.If(task.output == "promote")`` resolves both on a cluster and under kfp.local, whereas a condition on
a field of a NamedTuple output is silently skipped by kfp.local (kfp 2.17).
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from skinattn_components.image import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    prepared: Input[Dataset],
    bootstrap: int,
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    table: Output[Markdown],
):
    """Evaluate on the test split: ``evaluation`` is the whole folder (metrics.json, predictions, figures,
    overlays); ``metrics``/``classification`` feed the KFP UI; ``report`` and ``table`` are shown inline."""
    import os

    from skinattn.steps import evaluation as steps

    steps.evaluate_step(model.path, prepared.path, evaluation.path, bootstrap=bootstrap)
    steps.log_evaluation(evaluation.path, metrics, classification)
    steps.copy_file(os.path.join(evaluation.path, steps.REPORT_FILE), report.path)
    steps.copy_file(os.path.join(evaluation.path, steps.TABLE_FILE), table.path)


@dsl.component(base_image=component_image(), install_kfp_package=False)
def compare_with_production(
    evaluation: Input[Artifact], prepared: Input[Dataset], registry_root: str, promotion_metric: str
) -> str:
    """``"promote"`` when the candidate beats the production model re-evaluated on the same test split (or
    when there is no production model), else ``"keep"``."""
    from skinattn.steps import registry as steps

    return steps.production_gate_step(evaluation.path, prepared.path, registry_root, promotion_metric)


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ablation_table(evaluations: Input[List[Artifact]], table: Output[Markdown], table_csv: Output[Dataset]):
    """The paper's Table 1 (per-class precision and AUC of every network, Avg, W. Avg, support)."""
    from skinattn.steps import evaluation as steps

    steps.ablation_table_step([e.path for e in evaluations], table.path, table_csv.path)
