"""A copy of a saved model whose card stores a temperature, for the tests that check every prediction path
applies it: with an extreme temperature the probabilities flatten visibly, the top class stays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from scipy.special import log_softmax, softmax


def with_temperature(model_dir: Path, out_dir: Path, temperature: float) -> Path:
    """``model_dir`` copied to ``out_dir`` with ``calibration.temperature`` set in its model.json."""
    shutil.copytree(model_dir, out_dir)
    card_path = out_dir / "model.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["calibration"] = {"temperature": temperature, "fitted_on": "validation", "n": 10}
    card_path.write_text(json.dumps(card), encoding="utf-8")
    return out_dir


def rescaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from the T = 1 probabilities of the same logits (log p = logits - const per row)."""
    return softmax(log_softmax(np.log(np.asarray(probs, dtype=np.float64)), axis=1) / temperature, axis=1)
