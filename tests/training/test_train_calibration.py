"""Training ends by fitting a temperature on the best model's validation logits (issue 14, item 3): the card's
calibration section, the loaded model's temperature, summary.json, one printed line; the stored reference
distribution is of the calibrated probabilities (what scoring compares with); ``train.calibrate: false``
stores none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skinattn.evaluation.distribution import read_reference
from skinattn.models import load_model, read_card
from skinattn.training import train
from skinattn.training.datasets import load_prepared


@pytest.mark.slow  # two short training runs: about 25 s on a shared 2-core machine
def test_training_fits_and_stores_a_temperature(small_config: Any, prepared: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    calibrated = train(small_config(tmp_path / "on", train={"epochs": 1}))
    card = read_card(calibrated.model_dir)
    section = card["calibration"]
    assert set(section) >= {"temperature", "fitted_on", "n", "nll_before", "nll_after", "ece_before", "ece_after"}
    assert section["fitted_on"] == "validation" and section["n"] == len(load_prepared(prepared).val)
    assert section["temperature"] > 0 and section["temperature"] != 1.0
    assert section["nll_after"] < section["nll_before"]
    # nll_before is the card's validation loss of the same model at T = 1
    assert section["nll_before"] == pytest.approx(card["metadata"]["training"]["best_model_val_metrics"]["val_loss"], rel=1e-5)
    assert load_model(calibrated.model_dir).temperature == section["temperature"]
    assert json.loads((tmp_path / "on" / "summary.json").read_text())["calibration"] == section
    assert f"calibration: temperature {section['temperature']:.4g}, fitted on the validation split" in capsys.readouterr().out

    plain = train(small_config(tmp_path / "off", train={"epochs": 1, "calibrate": False}))
    plain_card = read_card(plain.model_dir)
    assert "calibration" not in plain_card and load_model(plain.model_dir).temperature == 1.0
    # Same seed, same weights: only the temperature moves the reference's confidence.
    on, off = read_reference(card), read_reference(plain_card)
    assert on["predicted"] == off["predicted"] and on["images"] == off["images"]
    assert (on["mean_confidence"] < off["mean_confidence"]) == (section["temperature"] > 1.0)
    assert on["mean_confidence"] != pytest.approx(off["mean_confidence"], abs=1e-4)
