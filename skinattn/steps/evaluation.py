"""Steps of the evaluation components (``components/evaluation.py``): evaluate a model on the test split,
show the result in the KFP UI, and assemble the paper's ablation table.

The production gate, also an evaluation component, is a registry step: :mod:`skinattn.steps.registry`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol

# The files of an evaluation folder (see skinattn.evaluation.run) that the pipelines read.
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
TABLE_FILE = "table.md"
PREDICTIONS_FILE = "predictions.csv"
# Headline numbers shown in the KFP UI's metrics table (flattened names of evaluation's metrics.json).
UI_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_avg.precision",
    "macro_avg.auc",
    "weighted_avg.precision",
    "weighted_avg.recall",
    "weighted_avg.auc",
    # expected calibration error with the model's temperature and at T = 1, and the temperature itself
    "calibration.ece",
    "calibration.ece_uncalibrated",
    "calibration.temperature",
)
# The KFP UI draws every point it is given; a few hundred are plenty for a curve.
MAX_ROC_POINTS = 200


class MetricsSink(Protocol):
    """What ``kfp.dsl.Metrics`` offers (structural, so that this module needs no kfp)."""

    def log_metric(self, metric: str, value: float) -> None: ...


class ClassificationSink(Protocol):
    """What ``kfp.dsl.ClassificationMetrics`` offers."""

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None: ...

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None: ...


def evaluate_step(
    model_dir: str | Path,
    prepared: str | Path,
    out: str | Path,
    *,
    bootstrap: int = 1000,
    external_test_uri: str = "",
    external_test_format: str = "isic-archive",
) -> dict[str, Any]:
    """Evaluate a model on the test split of a prepared folder (see ``skinattn.evaluation.run``), and on the
    external test set at ``external_test_uri`` when one is given (``skinattn.evaluation.external``)."""
    from skinattn.evaluation.external import ExternalTestSet
    from skinattn.evaluation.run import EvaluationSettings, evaluate

    external = ExternalTestSet(external_test_uri.strip(), external_test_format) if external_test_uri.strip() else None
    settings = EvaluationSettings(split="test", n_bootstrap=int(bootstrap), progress=False)
    metrics = evaluate(model_dir, prepared, out, settings, external=external)
    if external is not None:
        for note in metrics["external"]["notes"]:
            print(f"external test set: {note}")
    return metrics


def log_evaluation(evaluation_dir: str | Path, metrics: MetricsSink, classification: ClassificationSink) -> None:
    """Log an evaluation folder's headline numbers, confusion matrix and micro-averaged ROC curve (the UI
    draws one curve per ClassificationMetrics) for the KFP UI."""
    from skinattn.evaluation.metrics import micro_roc
    from skinattn.evaluation.predict import label_indices, probabilities, read_predictions
    from skinattn.registry import flatten_metrics

    evaluation_dir = Path(evaluation_dir)
    raw = json.loads((evaluation_dir / METRICS_FILE).read_text(encoding="utf-8"))
    flat = flatten_metrics(raw, str(evaluation_dir / METRICS_FILE))
    for name in UI_METRICS:
        # the external test set's numbers (issue 14) beside the internal ones, when it was evaluated
        for shown in (name, f"external.{name}"):
            value = flat.get(shown)
            if value is not None:  # undefined (NaN) values are explained in the report, not drawn as numbers
                metrics.log_metric(shown, round(float(value), 6))
    classes = list(raw["classes"])
    classification.log_confusion_matrix(classes, [[int(v) for v in row] for row in raw["confusion_matrix"]])
    predictions = read_predictions(evaluation_dir / PREDICTIONS_FILE)
    roc = micro_roc(label_indices(predictions, classes), probabilities(predictions, classes), MAX_ROC_POINTS)
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["threshold"])


def ablation_cells_step(configs: list[dict[str, Any]], seeds: int, seed: int) -> list[dict[str, Any]]:
    """The cells of a repeated ablation, ``{arch, soft_attention, seed}`` for every configuration and
    replicate (see ``skinattn.evaluation.ablation.ablation_cells``); printed for the log."""
    from skinattn.evaluation.ablation import ablation_cells

    cells = ablation_cells(configs, int(seeds), int(seed))
    for cell in cells:
        print(f"cell: {cell['arch']}{' + SA' if cell['soft_attention'] else ''}, training seed {cell['seed']}")
    return cells


def ablation_table_step(
    evaluation_dirs: list[str],
    markdown_out: str | Path,
    csv_out: str | Path,
    *,
    paired_out: str | Path | None = None,
    report_out: str | Path | None = None,
    bootstrap: int = 1000,
) -> str:
    """Write the paper's Table 1 (see ``skinattn.evaluation.ablation``, means over seeds) as CSV, and as
    Markdown; return the Markdown.

    With ``paired_out`` the Markdown is the paired report instead (``skinattn.evaluation.paired_report``:
    the verdict first, the SA − baseline table with ``bootstrap`` paired resamples, the per-network and
    DeLong tables, then Table 1), whose files (paired.md/csv/json/png, report.html) go into ``paired_out``;
    ``report_out`` gets a copy of its HTML report.
    """
    from skinattn.evaluation.ablation import ablation_table_from_folders
    from skinattn.evaluation.tables import to_csv_text, to_markdown
    from skinattn.fileio import atomic_open

    table = ablation_table_from_folders(evaluation_dirs)
    if paired_out is None:
        markdown = to_markdown(table)
    else:
        from skinattn.evaluation import paired_report

        report = paired_report.paired_ablation([paired_report.read_cell(d) for d in evaluation_dirs],
                                               n_resamples=int(bootstrap))  # fmt: skip
        paths = paired_report.write_outputs(report, paired_out, table)
        markdown = paired_report.markdown(report, table)  # the text of paired.md
        if report_out is not None:
            copy_file(paths["report.html"], report_out)
    for path, text in ((markdown_out, markdown), (csv_out, to_csv_text(table))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, newline="") as handle:
            handle.write(text)
    print(markdown)
    return markdown


def copy_file(source: str | Path, dest: str | Path) -> None:
    """Copy one file to an artifact path whose folder may not exist yet."""
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
