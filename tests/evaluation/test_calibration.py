"""Calibration measures (issue 14, item 3): ECE and its reliability bins, temperature scaling (Guo et al.
2017) recovering a known temperature, the T = 1 inversion evaluations report as "before", the figure."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import softmax

from skinattn.errors import DataError, ModelError
from skinattn.evaluation import compute_metrics
from skinattn.evaluation.calibration import (
    TEMPERATURE_BOUNDS,
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    uncalibrated,
)
from skinattn.evaluation.figures import reliability_png
from skinattn.models.calibration import calibrated_probabilities, describe_calibration, read_calibration

CLASSES = 5


def calibrated_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): a perfectly calibrated model, by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, size=(n, CLASSES))
    probs = softmax(logits, axis=1)
    labels = (probs.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, labels


def test_ece_by_hand_on_four_images() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])  # right, wrong, right, right
    bins = expected_calibration_error(labels, probs, bins=2)
    # bin (0.5, 1]: all four, confidence mean (0.9+0.8+0.7+0.55)/4 = 0.7375, accuracy 0.75
    assert bins.count.tolist() == [0, 4] and bins.ece == pytest.approx(abs(0.75 - 0.7375))
    ten = expected_calibration_error(labels, probs, bins=10)
    # bins (0.5,0.6]: 0.55 right; (0.6,0.7]: 0.7 right; (0.7,0.8]: 0.8 wrong; (0.8,0.9]: 0.9 right
    assert ten.count.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert ten.ece == pytest.approx((0.45 + 0.3 + 0.8 + 0.1) / 4)
    listed = ten.to_list()
    assert listed[5] == {"lower": 0.5, "upper": 0.6, "count": 1, "confidence": 0.55, "accuracy": 1.0}
    assert listed[0]["confidence"] is None and listed[0]["accuracy"] is None


def test_ece_of_calibrated_probabilities_is_near_zero_and_of_overconfident_ones_large() -> None:
    logits, labels = calibrated_sample(20000, seed=0)
    assert expected_calibration_error(labels, softmax(logits, axis=1)).ece < 0.015
    overconfident = expected_calibration_error(labels, softmax(3.0 * logits, axis=1))
    underconfident = expected_calibration_error(labels, softmax(logits / 3.0, axis=1))
    assert overconfident.ece > 0.1 and underconfident.ece > 0.1
    filled = overconfident.count > 0
    # Over-confidence: in the high-confidence bins accuracy lags confidence.
    top = filled & (overconfident.edges[:-1] >= 0.8)
    assert (overconfident.accuracy[top] < overconfident.confidence[top]).all()


@pytest.mark.parametrize("true_temperature", [2.5, 0.6])
def test_fit_temperature_recovers_a_known_temperature(true_temperature: float) -> None:
    logits, labels = calibrated_sample(20000, seed=1)
    fit = fit_temperature(logits * true_temperature, labels)  # the model's logits: calibrated ones times T
    assert fit.temperature == pytest.approx(true_temperature, rel=0.05)
    assert fit.nll_after < fit.nll_before and fit.n == 20000 and not fit.at_bound
    assert fit.nll_before == pytest.approx(negative_log_likelihood(logits * true_temperature, labels))
    scaled = calibrated_probabilities(torch.from_numpy(logits * true_temperature), fit.temperature).numpy()
    assert expected_calibration_error(labels, scaled).ece < 0.02


def test_fit_temperature_on_separable_data_stops_at_the_bound_and_refuses_bad_input() -> None:
    logits = np.array([[4.0, 0.0], [0.0, 4.0]] * 10)
    fit = fit_temperature(logits, np.array([0, 1] * 10))
    assert fit.at_bound and TEMPERATURE_BOUNDS[0] <= fit.temperature < 0.2  # sharpened until the NLL vanished
    wide = fit_temperature(np.array([[1.0, 0.0], [0.0, 1.0]] * 10) * 1e-3, np.array([0, 1] * 10))
    assert wide.at_bound and wide.temperature == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-3)
    with pytest.raises(DataError, match="no images"):
        fit_temperature(np.zeros((0, 3)), np.zeros(0))
    with pytest.raises(DataError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(DataError, match=r"class indices in \[0, 2\)"):
        expected_calibration_error(np.array([2]), np.array([[0.5, 0.5]]))


def test_uncalibrated_inverts_the_temperature_and_the_summary_reports_both() -> None:
    logits, labels = calibrated_sample(3000, seed=2)
    temperature = 1.7
    scaled = calibrated_probabilities(torch.from_numpy(logits), temperature).numpy()
    np.testing.assert_allclose(uncalibrated(scaled, temperature), softmax(logits, axis=1), atol=1e-12)
    summary = calibration_summary(labels, scaled, temperature)
    assert summary["temperature"] == temperature and summary["n_bins"] == 15 and len(summary["bins"]) == 15
    assert summary["ece_uncalibrated"] == pytest.approx(expected_calibration_error(labels, softmax(logits, axis=1)).ece)
    assert summary["ece"] == pytest.approx(expected_calibration_error(labels, scaled).ece)
    assert summary["ece"] > summary["ece_uncalibrated"]  # softening a calibrated model mis-calibrates it
    metrics = compute_metrics(labels, scaled, [f"c{k}" for k in range(CLASSES)], n_bootstrap=0, progress=False,
                              temperature=temperature)  # fmt: skip
    assert metrics["calibration"] == summary


def test_reliability_figure_is_a_png_of_two_panels() -> None:
    logits, labels = calibrated_sample(2000, seed=3)
    summary = calibration_summary(labels, softmax(2.0 * logits, axis=1), 0.5)
    picture = Image.open(io.BytesIO(reliability_png(summary)))
    assert picture.format == "PNG" and picture.width > 1.8 * picture.height  # side by side


def test_the_card_section_is_checked_and_described() -> None:
    assert read_calibration({}) is None
    assert read_calibration({"calibration": {"temperature": 2}})["temperature"] == 2.0
    for bad in (0, -1.0, float("nan"), "2", True):
        with pytest.raises(ModelError, match="card.json: calibration temperature must be a finite number > 0"):
            read_calibration({"calibration": {"temperature": bad}}, source="card.json")
    with pytest.raises(ModelError, match="must be an object with a 'temperature'"):
        read_calibration({"calibration": 1.5})
    assert describe_calibration(None).startswith("uncalibrated") and "T = 1" in describe_calibration(None)
    line = describe_calibration({"temperature": 1.5, "fitted_on": "validation", "n": 60, "ece_before": 0.2,
                                 "ece_after": 0.05})  # fmt: skip
    assert line == "temperature 1.5, fitted on the validation split (60 images); ECE there 0.200 -> 0.050"
