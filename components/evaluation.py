"""Evaluation components: evaluate on the test split, the champion/challenger gate, the ablation cells and table.

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
    external_test_uri: str = "",
    external_test_format: str = "isic-archive",
):
    """Evaluate on the test split: ``evaluation`` is the whole folder (metrics.json, predictions, figures,
    overlays); ``metrics``/``classification`` feed the KFP UI; ``report`` and ``table`` are shown inline.
    With ``external_test_uri``, also on that external collection, shown beside the test split."""
    import os

    from skinattn.steps import evaluation as steps

    steps.evaluate_step(model.path, prepared.path, evaluation.path, bootstrap=bootstrap,
                        external_test_uri=external_test_uri, external_test_format=external_test_format)  # fmt: skip
    steps.log_evaluation(evaluation.path, metrics, classification)
    steps.copy_file(os.path.join(evaluation.path, steps.REPORT_FILE), report.path)
    steps.copy_file(os.path.join(evaluation.path, steps.TABLE_FILE), table.path)


@dsl.component(base_image=component_image(), install_kfp_package=False)
def compare_with_production(
    evaluation: Input[Artifact],
    prepared: Input[Dataset],
    registry_root: str,
    promotion_metric: str,
    promotion_source: str = "internal",
) -> str:
    """``"promote"`` when the candidate beats the production model re-evaluated on the same test split (or,
    with ``promotion_source="external"``, on the same external test set; or when there is no production
    model), else ``"keep"``."""
    from skinattn.steps import registry as steps

    return steps.production_gate_step(evaluation.path, prepared.path, registry_root, promotion_metric,
                                      promotion_source)  # fmt: skip


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ablation_cells(configs: list, seeds: int, seed: int) -> list:
    """Every configuration × replicate as ``{arch, soft_attention, seed}``: the training seed of replicate r
    is derived from (``seed``, r), the same for both arms of an architecture; the split seed stays ``seed``."""
    from skinattn.steps import evaluation as steps

    return steps.ablation_cells_step(configs, seeds, seed)


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ablation_table(
    evaluations: Input[List[Artifact]],
    bootstrap: int,
    table: Output[Markdown],
    table_csv: Output[Dataset],
    paired: Output[Dataset],
    report: Output[HTML],
):
    """``table``: the verdict (did Soft Attention help each architecture beyond noise?), the paired SA −
    baseline table with bootstrap CIs, McNemar and DeLong, the per-network mean ± sd over seeds, and the
    paper's Table 1 (means over seeds), each headed with the split protocol. ``table_csv``: Table 1;
    ``paired``: paired.md/csv/json/png and report.html; ``report``: that HTML report with its figure."""
    from skinattn.steps import evaluation as steps

    steps.ablation_table_step([e.path for e in evaluations], table.path, table_csv.path, paired_out=paired.path,
                              report_out=report.path, bootstrap=bootstrap)  # fmt: skip
