"""The scoring summary and report name the model by more than path and hash (issue 14, item 6):
architecture, Soft-Attention on/off, input size and the training run's figures from the model card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _scoring_fixtures import make_archive

from skinattn.models import create_model, save_model
from skinattn.scoring import ScoreSettings, merge_outputs, score_source
from skinattn.scoring.model_source import describe_model, model_facts

FAST = ScoreSettings(batch_size=4, workers=0, device="cpu", chunk_size=5, n_bootstrap=0, progress=False)
TRAINING = {
    "monitor": "val_loss", "best_epoch": 7, "best_value": 1.2345, "epochs_run": 9, "train_images": 4186,
    "val_images": 600, "stop_reason": "reached train.epochs=9",
    "best_epoch_metrics": {"epoch": 7, "train_loss": 0.91234, "train_accuracy": 0.7011, "val_loss": 1.2345},
    "best_model_val_metrics": {"balanced_accuracy": 0.61234, "macro_auc": 0.90111, "val_accuracy": 0.75,
                               "val_loss": 1.2345},
}  # fmt: skip


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline (no SA) resnet10t at 32 px whose card holds a training run's metadata."""
    torch.manual_seed(0)
    model = create_model("resnet10t", img_size=32, soft_attention=False)
    return save_model(model, tmp_path_factory.mktemp("model"), metadata={"training": TRAINING})


def test_summary_report_and_merge_carry_the_model_facts(trained_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 8)
    result = score_source(str(folder), tmp_path / "out.csv", str(trained_model), FAST)
    summary = json.loads(result.summary.read_text())
    assert summary["model_arch"] == "resnet10t" and summary["model_soft_attention"] is False
    assert summary["model_input_size"] == 32 and summary["model_classes"] == 7
    assert summary["model_best_epoch"] == 7 and summary["model_epochs_run"] == 9
    assert summary["model_train_images"] == 4186 and summary["model_val_images"] == 600
    assert summary["model_val_balanced_accuracy"] == pytest.approx(0.6123)
    assert summary["model_val_macro_auc"] == pytest.approx(0.9011)
    assert summary["model_train_loss"] == pytest.approx(0.9123)

    assert result.evaluation is not None
    report = (result.evaluation / "report.html").read_text()
    assert "model_arch" in report and "resnet10t" in report and "model_val_balanced_accuracy" in report

    shards = [score_source(str(folder), tmp_path / f"s{i}.csv", str(trained_model), FAST, shard=f"{i}/2").predictions
              for i in range(2)]  # fmt: skip
    merged = json.loads(merge_outputs(shards, tmp_path / "merged.csv", FAST).summary.read_text())
    assert {k: v for k, v in merged.items() if k.startswith("model_") and k != "model_version"} == {
        k: v for k, v in summary.items() if k.startswith("model_") and k != "model_version"
    }


def test_describe_model_in_one_line_and_bare_cards() -> None:
    card = {"config": {"arch": "resnet10t", "soft_attention": True, "input_size": 224, "class_names": ["a", "b"]},
            "metadata": {"training": TRAINING}}  # fmt: skip
    line = describe_model(model_facts(card))
    assert line == ("resnet10t + SA, 224 px; validation balanced accuracy 0.612, macro AUC 0.901 "
                    "(best epoch 7 of 9, 4186 training images)")  # fmt: skip
    bare = model_facts({"config": {"arch": "resnet10t", "soft_attention": False, "input_size": 32}})
    assert describe_model(bare) == "resnet10t (no SA), 32 px"
    assert model_facts({}) == {} and describe_model({}) == ""
