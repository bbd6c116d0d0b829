"""Every evaluation reports calibration (issue 14, item 3): predictions carry the model's temperature,
metrics.json has ECE with it and at T = 1, the report shows both numbers and the reliability diagrams."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _calibration_helpers import rescaled, with_temperature
from PIL import Image

from skinattn.constants import HAM10000_CLASSES
from skinattn.evaluation import EvaluationSettings, evaluate
from skinattn.evaluation.calibration import expected_calibration_error
from skinattn.evaluation.predict import label_indices, probabilities

TEMPERATURE = 3.0
FAST = EvaluationSettings(split="test", n_bootstrap=0, explain_per_class=0, device="cpu", progress=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, sa_model_dir: Path, manifest_dir: Path) -> dict[str, Path]:
    """The same weights evaluated without a temperature and with one stored in the card."""
    root = tmp_path_factory.mktemp("calibration-eval")
    hot = with_temperature(sa_model_dir, root / "hot-model", TEMPERATURE)
    out = {"plain": root / "plain", "hot": root / "hot"}
    evaluate(sa_model_dir, manifest_dir, out["plain"], FAST)
    evaluate(hot, manifest_dir, out["hot"], FAST)
    return out


def _probs(run: Path) -> tuple[np.ndarray, np.ndarray]:
    table = pd.read_csv(run / "predictions.csv", dtype={"image_id": str, "label": str})
    names = list(HAM10000_CLASSES)
    return label_indices(table, names), probabilities(table, names)


def test_predictions_apply_the_cards_temperature(runs: dict[str, Path]) -> None:
    _, plain = _probs(runs["plain"])
    _, hot = _probs(runs["hot"])
    np.testing.assert_allclose(hot, rescaled(plain, TEMPERATURE), atol=1e-6)
    assert (hot.max(axis=1) < plain.max(axis=1)).all()


def test_metrics_json_has_ece_before_and_after(runs: dict[str, Path]) -> None:
    labels, plain = _probs(runs["plain"])
    _, hot = _probs(runs["hot"])
    plain_metrics = json.loads((runs["plain"] / "metrics.json").read_text())["calibration"]
    hot_metrics = json.loads((runs["hot"] / "metrics.json").read_text())["calibration"]
    assert plain_metrics["temperature"] == 1.0 and plain_metrics["ece"] == plain_metrics["ece_uncalibrated"]
    assert hot_metrics["temperature"] == TEMPERATURE
    assert hot_metrics["ece"] == pytest.approx(expected_calibration_error(labels, hot).ece)
    # "before" is the model at T = 1: what the uncalibrated copy of the same weights measured
    assert hot_metrics["ece_uncalibrated"] == pytest.approx(plain_metrics["ece"], abs=1e-6)
    assert hot_metrics["ece"] != pytest.approx(hot_metrics["ece_uncalibrated"], abs=1e-3)
    assert sum(b["count"] for b in hot_metrics["bins"]) == len(labels) == sum(b["count"] for b in hot_metrics["bins_uncalibrated"])


def test_report_shows_both_numbers_and_the_reliability_diagrams(runs: dict[str, Path]) -> None:
    metrics = json.loads((runs["hot"] / "metrics.json").read_text())
    html = (runs["hot"] / "report.html").read_text()
    section = html[html.index("<h2>Calibration</h2>"):]
    assert f"{metrics['calibration']['ece_uncalibrated']:.3f}" in section and f"{metrics['calibration']['ece']:.3f}" in section
    assert "T = 3" in section
    assert metrics["run"]["calibration"].startswith("temperature 3, fitted on the validation split")
    figure = base64.b64decode(re.search(r'alt="reliability diagrams" src="data:image/png;base64,([^"]+)"', section).group(1))
    assert figure == (runs["hot"] / "reliability.png").read_bytes()
    assert Image.open(io.BytesIO(figure)).format == "PNG"
    plain_run = json.loads((runs["plain"] / "metrics.json").read_text())["run"]
    assert plain_run["calibration"].startswith("uncalibrated")


def test_the_pipeline_step_logs_the_calibration_figures(runs: dict[str, Path]) -> None:
    """The KFP UI's metrics table gets ECE before/after and T (skinattn.steps.evaluation.log_evaluation)."""
    from skinattn.steps.evaluation import log_evaluation

    class Sink:  # the structural kfp.dsl.Metrics / ClassificationMetrics protocols, recording
        def __init__(self) -> None:
            self.logged: dict[str, float] = {}

        def log_metric(self, metric: str, value: float) -> None:
            self.logged[metric] = value

        def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None:
            pass

        def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None:
            pass

    sink = Sink()
    log_evaluation(runs["hot"], sink, sink)
    calibration = json.loads((runs["hot"] / "metrics.json").read_text())["calibration"]
    assert sink.logged["calibration.temperature"] == TEMPERATURE
    assert sink.logged["calibration.ece"] == pytest.approx(calibration["ece"], abs=1e-6)
    assert sink.logged["calibration.ece_uncalibrated"] == pytest.approx(calibration["ece_uncalibrated"], abs=1e-6)
