"""Evaluation in the paper's terms: predictions over a split, metrics, paper tables, figures, explanations, report."""

from skinattn.evaluation.explain import Explainer, Explanation, gradcam_target_layer
from skinattn.evaluation.metrics import compute_metrics
from skinattn.evaluation.predict import isic_layout, predict_rows, select_split
from skinattn.evaluation.run import EvaluationSettings, evaluate, metrics_from_predictions

__all__ = [
    "EvaluationSettings",
    "Explainer",
    "Explanation",
    "compute_metrics",
    "evaluate",
    "gradcam_target_layer",
    "isic_layout",
    "metrics_from_predictions",
    "predict_rows",
    "select_split",
]
