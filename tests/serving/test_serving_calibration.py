"""The endpoint's model service applies the model card's temperature (issue 14, item 3), in-process: the
served probabilities are softmax(logits / T), flatter than the same weights' at T = 1, equal to the
library Predictor's; the start-up log line names the temperature. (The HTTP tests serve a model with a
temperature too, and compare the answers with the Predictor.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _calibration_helpers import rescaled, with_temperature
from PIL import Image

from serving.runtime import Preprocessor, ServingModel
from skinattn.inference import Predictor
from skinattn.models import create_model, save_model

TEMPERATURE = 6.0


def test_serving_model_applies_the_cards_temperature(tmp_path) -> None:
    torch.manual_seed(0)
    plain_dir = save_model(create_model("resnet10t", soft_attention=True, img_size=64), tmp_path / "plain")
    hot_dir = with_temperature(plain_dir, tmp_path / "hot", TEMPERATURE)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)) for _ in range(3)]
    pixels = np.concatenate([Preprocessor(hot_dir).prepare(image) for image in images])

    plain, hot = ServingModel(plain_dir), ServingModel(hot_dir)
    plain_rows, hot_rows = plain.classify(pixels), hot.classify(pixels)
    assert plain.temperature == 1.0 and hot.temperature == TEMPERATURE
    np.testing.assert_allclose(hot_rows["probabilities"], rescaled(plain_rows["probabilities"], TEMPERATURE), atol=1e-5)
    assert (hot_rows["probabilities"].max(axis=1) < plain_rows["probabilities"].max(axis=1)).all()
    np.testing.assert_array_equal(hot_rows["attention"], plain_rows["attention"])  # the maps do not depend on T
    expected = Predictor(hot_dir).predict(images)
    for row, want in zip(hot_rows, expected):
        assert row["probabilities"].tolist() == pytest.approx(list(want.probabilities.values()), abs=1e-6)
    assert hot.describe_calibration().startswith("temperature 6, fitted on the validation split")
    assert plain.describe_calibration().startswith("uncalibrated")
