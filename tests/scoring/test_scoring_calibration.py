"""Batch scoring applies the model card's temperature and names it (issue 14, item 3): the predictions are
softmax(logits / T), the summary (and a merge of shards) says which T, the evaluation reports ECE at T and at 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _calibration_helpers import rescaled, with_temperature
from _scoring_fixtures import make_archive

from skinattn.constants import HAM10000_CLASSES
from skinattn.evaluation.predict import prob_column
from skinattn.models import create_model, save_model
from skinattn.scoring import ScoreSettings, merge_outputs, score_source
from skinattn.scoring.model_source import describe_model
from skinattn.scoring.tables import read_table

FAST = ScoreSettings(batch_size=4, workers=0, device="cpu", chunk_size=5, n_bootstrap=0, progress=False)
TEMPERATURE = 4.0


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("calibration-models")
    plain = save_model(create_model("resnet10t", img_size=32, soft_attention=False), root / "plain")
    return {"plain": plain, "hot": with_temperature(plain, root / "hot", TEMPERATURE)}


def _probs(predictions: Path) -> np.ndarray:
    table = read_table(predictions).sort_values("file")
    return table[[prob_column(c) for c in HAM10000_CLASSES]].to_numpy(dtype=np.float64)


def test_scoring_applies_and_names_the_temperature(models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 8)
    plain = score_source(str(folder), tmp_path / "plain.csv", str(models["plain"]), FAST)
    hot = score_source(str(folder), tmp_path / "hot.csv", str(models["hot"]), FAST)
    np.testing.assert_allclose(_probs(hot.predictions), rescaled(_probs(plain.predictions), TEMPERATURE), atol=1e-6)

    summary = json.loads(hot.summary.read_text())
    assert summary["model_temperature"] == TEMPERATURE
    assert summary["model_calibration"].startswith("temperature 4, fitted on the validation split")
    assert describe_model(summary).endswith("; probabilities at temperature 4")
    plain_summary = json.loads(plain.summary.read_text())
    assert plain_summary["model_temperature"] == 1.0 and plain_summary["model_calibration"].startswith("uncalibrated")

    assert hot.evaluation is not None
    calibration = json.loads((hot.evaluation / "metrics.json").read_text())["calibration"]
    plain_calibration = json.loads((plain.evaluation / "metrics.json").read_text())["calibration"]
    assert calibration["temperature"] == TEMPERATURE
    assert calibration["ece_uncalibrated"] == pytest.approx(plain_calibration["ece"], abs=1e-6)
    assert (hot.evaluation / "reliability.png").is_file() and "<h2>Calibration</h2>" in (hot.evaluation / "report.html").read_text()

    shards = [score_source(str(folder), tmp_path / f"s{i}.csv", str(models["hot"]), FAST, shard=f"{i}/2").predictions
              for i in range(2)]  # fmt: skip
    merged = merge_outputs(shards, tmp_path / "merged.csv", FAST)
    merged_summary = json.loads(merged.summary.read_text())
    assert merged_summary["model_temperature"] == TEMPERATURE
    assert json.loads((merged.evaluation / "metrics.json").read_text())["calibration"]["temperature"] == TEMPERATURE
