"""The model card's temperature reaches every path from logits to probabilities (issue 14, item 3):
load_model sets it, save_model keeps it, Predictor (``skinattn models predict``) and the Explainer apply it;
no module turns logits into probabilities on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _calibration_helpers import rescaled, with_temperature
from PIL import Image

from skinattn.errors import ModelError
from skinattn.evaluation.explain import Explainer
from skinattn.inference import Predictor
from skinattn.models import create_model, load_model, save_model

REPO = Path(__file__).resolve().parents[2]
TEMPERATURE = 8.0


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("resnet10t", img_size=64), tmp_path_factory.mktemp("plain") / "model")


@pytest.fixture(scope="module")
def hot_model(plain_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_temperature(plain_model, tmp_path_factory.mktemp("hot") / "model", TEMPERATURE)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)) for _ in range(n)]


def test_load_model_carries_the_temperature_and_save_model_keeps_it(plain_model: Path, hot_model: Path, tmp_path: Path):
    assert load_model(plain_model).temperature == 1.0 and load_model(plain_model).calibration is None
    hot = load_model(hot_model)
    assert hot.temperature == TEMPERATURE and hot.calibration["fitted_on"] == "validation"
    logits = torch.randn(4, 7)
    torch.testing.assert_close(hot.probabilities(logits), torch.softmax(logits / TEMPERATURE, dim=1))
    again = load_model(save_model(hot, tmp_path / "again"))
    assert again.calibration == hot.calibration
    assert "calibration" not in json.loads((plain_model / "model.json").read_text())  # optional section


def test_a_bad_temperature_in_the_card_is_refused_naming_the_file(hot_model: Path, tmp_path: Path):
    broken = with_temperature(hot_model, tmp_path / "broken", -2.0)
    with pytest.raises(ModelError, match=r"broken/model.json: calibration temperature must be a finite number > 0, got -2.0"):
        load_model(broken)


def test_predictor_applies_the_cards_temperature(plain_model: Path, hot_model: Path):
    images = _images(3)
    plain = np.array([list(p.probabilities.values()) for p in Predictor(plain_model).predict(images)])
    hot_predictions = Predictor(hot_model).predict(images)
    hot = np.array([list(p.probabilities.values()) for p in hot_predictions])
    np.testing.assert_allclose(hot, rescaled(plain, TEMPERATURE), atol=1e-6)
    assert (np.ptp(hot, axis=1) < np.ptp(plain, axis=1)).all()  # flattened...
    assert [p.top_class for p in hot_predictions] == [Predictor(plain_model).config.class_names[i] for i in plain.argmax(1)]


def test_explainer_applies_the_cards_temperature(plain_model: Path, hot_model: Path):
    images = _images(2)
    plain = [e.probabilities for e in Explainer(load_model(plain_model), "cpu").explain(images)]
    hot = [e.probabilities for e in Explainer(load_model(hot_model), "cpu").explain(images)]
    np.testing.assert_allclose(np.array([list(p.values()) for p in hot]),
                               rescaled(np.array([list(p.values()) for p in plain]), TEMPERATURE), atol=1e-6)  # fmt: skip


def test_no_module_turns_logits_into_probabilities_by_itself():
    """One function (skinattn.models.calibration) does it, so that no path can forget the temperature; the
    Soft Attention layer's spatial softmax is not over logits. (A call, not ``softmax(`` in a docstring.)"""
    allowed = {"skinattn/models/calibration.py", "skinattn/models/soft_attention.py",
               "skinattn/evaluation/calibration.py"}  # fits the temperature on logits, with scipy
    offenders = []
    for folder in ("skinattn", "serving", "components", "pipelines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative not in allowed and re.search(r"(?<!`)\bsoftmax\(", path.read_text(encoding="utf-8")):
                offenders.append(relative)
    assert offenders == [], f"softmax outside skinattn.models.calibration: {offenders}"


def test_the_predict_command_prints_calibrated_probabilities_and_names_the_temperature(
    hot_model: Path, plain_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from skinattn.cli import main

    path = tmp_path / "lesion.png"
    _images(1)[0].save(path)
    assert main(["predict", "--model", str(hot_model), "--json", str(path)]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.strip())
    expected = Predictor(hot_model).predict([Image.open(path).convert("RGB")])[0].probabilities
    assert {k: row[k] for k in expected} == {k: round(v, 4) for k, v in expected.items()}
    assert "probabilities: temperature 8, fitted on the validation split (10 images)" in captured.err
    assert main(["predict", "--model", str(plain_model), str(path)]) == 0
    assert "probabilities: uncalibrated: the model card stores no temperature, so T = 1" in capsys.readouterr().err
