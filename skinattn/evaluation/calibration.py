"""Calibration: how far a model's confidence is from its accuracy, and the temperature that narrows the gap.

- :func:`expected_calibration_error`: top-label ECE over equal-width confidence bins, with the per-bin
  confidence, accuracy and count a reliability diagram draws (:func:`skinattn.evaluation.figures.reliability_png`);
- :func:`fit_temperature`: temperature scaling (Guo et al., 2017), fitted by training on the validation
  split's logits and stored in the model card (:mod:`skinattn.models.calibration` applies it);
- :func:`calibration_summary`: the ``calibration`` section of every evaluation's metrics (ECE with the
  model's temperature and without it, i.e. T = 1).

ECE = sum over bins b of (n_b / N) * |accuracy_b - confidence_b|, where an image's confidence is its top
probability and it is correct when the top class is the true one. Bins are (i/B, (i+1)/B], the first one
closed at 0; 15 bins as in Guo et al.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from skinattn.errors import DataError

ECE_BINS = 15
# The search range of T: wide enough for any trained network (Guo et al. report 1-3), narrow enough that
# a degenerate split (all correct and separable: NLL keeps falling as T -> 0) cannot produce absurd values.
TEMPERATURE_BOUNDS: tuple[float, float] = (0.05, 20.0)


@dataclasses.dataclass(frozen=True)
class ReliabilityBins:
    """Top-label reliability over equal-width bins; ``confidence``/``accuracy`` are NaN for empty bins."""

    edges: np.ndarray  # (B + 1,)
    count: np.ndarray  # (B,) int
    confidence: np.ndarray  # (B,) mean top probability of the bin's images
    accuracy: np.ndarray  # (B,) share of them whose top class is the true one
    ece: float

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready, one entry per bin (null confidence/accuracy for an empty bin)."""
        return [
            {"lower": round(float(self.edges[i]), 6), "upper": round(float(self.edges[i + 1]), 6),
             "count": int(self.count[i]),
             "confidence": None if self.count[i] == 0 else round(float(self.confidence[i]), 6),
             "accuracy": None if self.count[i] == 0 else round(float(self.accuracy[i]), 6)}
            for i in range(len(self.count))
        ]  # fmt: skip


def _check(y_true: np.ndarray, scores: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != y_true.shape[0]:
        raise DataError(f"calibration needs (N, K) {what} for N labels, got {scores.shape} for {y_true.shape[0]}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= scores.shape[1]):
        raise DataError(f"labels must be class indices in [0, {scores.shape[1]}), got {y_true.min()}..{y_true.max()}")
    return y_true, scores


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> ReliabilityBins:
    """Top-label ECE of ``probs`` (N, K) against true class indices ``y_true``, with its reliability bins."""
    if bins < 1:
        raise DataError(f"ECE needs at least one bin, got {bins}")
    y_true, probs = _check(y_true, probs, "probabilities")
    edges = np.linspace(0.0, 1.0, bins + 1)
    confidence = probs.max(axis=1) if len(probs) else np.zeros(0)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64) if len(probs) else np.zeros(0)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] * np.abs(accuracy[filled] - mean_confidence[filled])) / max(len(probs), 1))
    return ReliabilityBins(edges, count, mean_confidence, accuracy, ece if len(probs) else math.nan)


def negative_log_likelihood(logits: np.ndarray, y_true: np.ndarray, temperature: float = 1.0) -> float:
    """Mean cross-entropy of ``softmax(logits / temperature)`` against ``y_true``."""
    y_true, logits = _check(y_true, logits, "logits")
    log_probs = log_softmax(logits / temperature, axis=1)
    return float(-log_probs[np.arange(len(y_true)), y_true].mean())


@dataclasses.dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    n: int
    nll_before: float  # at T = 1
    nll_after: float
    # The data do not pin T down: the optimum lies on an end of TEMPERATURE_BOUNDS, or the NLL vanished
    # (every image right with near certainty: a split too small or too easy to calibrate on).
    at_bound: bool


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> TemperatureFit:
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` on (``logits``, ``y_true``).

    Temperature scaling, Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks",
    ICML 2017: one scalar fitted on held-out data; the top class never changes. The NLL is convex in 1/T,
    so a bounded scalar search over log T (Brent) finds the one minimum within :data:`TEMPERATURE_BOUNDS`.
    T = 1 is kept if the search cannot beat it.
    """
    y_true, logits = _check(y_true, logits, "logits")
    if not len(y_true):
        raise DataError("cannot fit a temperature on no images")
    if not np.isfinite(logits).all():
        raise DataError("cannot fit a temperature: the logits hold NaN or infinite values")
    low, high = (math.log(b) for b in TEMPERATURE_BOUNDS)
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, y_true, math.exp(log_t)),
                             bounds=(low, high), method="bounded", options={"xatol": 1e-5})  # fmt: skip
    before = negative_log_likelihood(logits, y_true, 1.0)
    temperature, after = math.exp(float(result.x)), float(result.fun)
    if not after < before:
        temperature, after = 1.0, before
    at_bound = min(abs(math.log(temperature) - low), abs(math.log(temperature) - high)) < 1e-3 or after < 1e-9
    return TemperatureFit(temperature, len(y_true), before, after, at_bound)


def uncalibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """The T = 1 probabilities behind ``probs = softmax(z / temperature)``: ``softmax(temperature * log probs)``
    (the log recovers z / T up to a constant per row, which the softmax ignores). A probability that
    underflowed to 0 stays 0."""
    probs = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return probs
    with np.errstate(divide="ignore"):
        return softmax(temperature * np.log(probs), axis=1)


def calibration_summary(y_true: np.ndarray, probs: np.ndarray, temperature: float = 1.0,
                        bins: int = ECE_BINS) -> dict[str, Any]:  # fmt: skip
    """The ``calibration`` section of an evaluation's metrics: ``probs`` are the model's probabilities with
    ``temperature`` applied; ``ece_uncalibrated`` and ``bins_uncalibrated`` are the same at T = 1."""
    after = expected_calibration_error(y_true, probs, bins)
    before = expected_calibration_error(y_true, uncalibrated(probs, temperature), bins)
    return {
        "ece": after.ece,
        "ece_uncalibrated": before.ece,
        "temperature": float(temperature),
        "n_bins": bins,
        "bins": after.to_list(),
        "bins_uncalibrated": before.to_list(),
    }


def card_section(fit: TemperatureFit, ece_before: float, ece_after: float,
                 fitted_on: str = "validation") -> dict[str, Any]:  # fmt: skip
    """What training stores as the model card's ``calibration`` section (see skinattn.models.calibration)."""
    return {
        "temperature": round(fit.temperature, 6),
        "fitted_on": fitted_on,
        "n": fit.n,
        "nll_before": round(fit.nll_before, 6),
        "nll_after": round(fit.nll_after, 6),
        "ece_before": round(ece_before, 6),
        "ece_after": round(ece_after, 6),
        "ece_bins": ECE_BINS,
        "method": "temperature scaling (Guo et al. 2017), NLL minimised over T in "
                  f"[{TEMPERATURE_BOUNDS[0]}, {TEMPERATURE_BOUNDS[1]}]"
                  + ("; not determined by the data (optimum at a bound, or the NLL vanished)" if fit.at_bound else ""),
    }  # fmt: skip
