"""Logits to class probabilities, with the model's temperature: the one place any path turns logits into
probabilities (evaluation, ``predict``, batch scoring, explanations, the serving endpoint and validation
during training all call :func:`calibrated_probabilities`, most through
:meth:`skinattn.models.SoftAttentionNet.probabilities`).

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks") divides the logits by
one scalar T > 0 before the softmax: the arg-max class is unchanged, only the confidence moves (T > 1
softens an over-confident model). Training fits T on the validation split
(:mod:`skinattn.evaluation.calibration`) and stores it in the model card's ``calibration`` section::

    "calibration": {"temperature": 1.53, "fitted_on": "validation", "n": 600,
                    "nll_before": ..., "nll_after": ..., "ece_before": ..., "ece_after": ...}

:func:`skinattn.models.load_model` sets it on the loaded network. A card without the section (saved before
calibration existed, by ``skinattn models init``, or trained with ``train.calibrate: false``) means
T = 1: plain softmax, as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from skinattn.errors import ModelError

CALIBRATION_KEY = "calibration"  # top-level section of model.json
NO_TEMPERATURE = 1.0


def calibrated_probabilities(logits: torch.Tensor, temperature: float = NO_TEMPERATURE) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the class dimension (1), in float32 (float64 stays float64:
    training's validation works in double)."""
    values = logits if logits.dtype == torch.float64 else logits.float()
    if temperature != NO_TEMPERATURE:
        values = values / temperature
    return values.softmax(dim=1)


def check_temperature(value: Any, source: str) -> float:
    """``value`` as a finite float > 0, else a ModelError naming ``source`` (e.g. the card's path)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"{source}: calibration temperature must be a finite number > 0, got {value!r}")
    return float(value)


def read_calibration(card: Mapping[str, Any], source: str = "model card") -> dict[str, Any] | None:
    """The card's calibration section with its temperature checked, or None when the card has none."""
    section = card.get(CALIBRATION_KEY)
    if section is None:
        return None
    if not isinstance(section, Mapping) or "temperature" not in section:
        raise ModelError(f"{source}: '{CALIBRATION_KEY}' must be an object with a 'temperature', got {section!r}")
    return dict(section) | {"temperature": check_temperature(section["temperature"], source)}


def describe_calibration(calibration: Mapping[str, Any] | None) -> str:
    """One line for logs and summaries: which temperature is applied and where it came from."""
    if not calibration:
        return "uncalibrated: the model card stores no temperature, so T = 1 (plain softmax)"
    text = f"temperature {float(calibration['temperature']):.4g}"
    fitted_on = calibration.get("fitted_on")
    if fitted_on:
        text += f", fitted on the {fitted_on} split" + (f" ({calibration['n']} images)" if calibration.get("n") else "")
    before, after = calibration.get("ece_before"), calibration.get("ece_after")
    if isinstance(before, (int, float)) and isinstance(after, (int, float)):
        text += f"; ECE there {before:.3f} -> {after:.3f}"
    return text
