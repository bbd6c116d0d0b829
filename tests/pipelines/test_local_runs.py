"""The pipelines end to end with kfp.local on a tiny synthetic set (resnet10t, 32 px, 1 epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from skinattn_pipelines.local import run_local
from skinattn.constants import HAM10000_CLASSES
from skinattn.data.synthetic import make_sample_dataset
from skinattn.registry import Registry

pytestmark = pytest.mark.slow

TINY = {"arch": "resnet10t", "image_size": 32, "epochs": 1, "batch_size": 16, "lr": 0.001, "gpus": 0, "bootstrap": 0}


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    # 20 per class: the default grouped split needs 20 lesion folds per class.
    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "data", per_class=20, size=32, seed=0).parent


def _output(run_dir: Path, task: str) -> dict:
    return json.loads((run_dir / task / "executor_output.json").read_text())


def test_training_pipeline_promotes_first_and_keeps_an_equal_model(sample, tmp_path):
    registry_root = str(tmp_path / "registry")
    params = TINY | {"data_uri": str(sample), "registry_root": registry_root, "promotion_metric": "balanced_accuracy"}

    first = run_local("training", params, tmp_path / "root")
    assert _output(first, "compare-with-production")["parameterValues"]["Output"] == "promote"
    assert _output(first, "register")["parameterValues"]["Output"] == "v1"
    registry = Registry(registry_root)
    production = registry.production()
    assert production is not None and production.version == "v1"
    assert production.run_id and production.data_fingerprint.startswith("sha256:")
    assert production.params["model"]["arch"] == "resnet10t" and "balanced_accuracy" in production.metrics

    # Lineage: register's Model artifact names the new registry version (its record) and says what it is; its
    # own URI stays in the run's pipeline root, where its file is a copy of that record (docs/pipelines.md).
    fingerprint = _output(first, "prepare")["parameterValues"]["Output"]  # register got this, not the data set
    prepared = _output(first, "prepare")["artifacts"]["prepared"]["artifacts"][0]
    assert prepared["metadata"]["data_fingerprint"] == fingerprint == production.data_fingerprint
    registered = _output(first, "register")["artifacts"]["registered_model"]["artifacts"][0]
    lineage = registered["metadata"]
    assert lineage["registry_uri"] == registry.location(production) == str(Path(registry_root, "versions", "000001.json"))
    assert (lineage["version"], lineage["promoted"], lineage["data_fingerprint"]) == ("v1", True, fingerprint)
    assert lineage["metrics"]["balanced_accuracy"] == production.metrics["balanced_accuracy"]
    assert Path(registered["uri"]) == first / "register" / "registered_model"
    record = json.loads(Path(registered["uri"]).read_text())
    assert record["registry_uri"] == lineage["registry_uri"] and record["files"]["model.safetensors"]["sha256"]

    # What the KFP UI draws: headline metrics, a 7x7 confusion matrix and a ROC curve, plus HTML and Markdown.
    artifacts = {name: a["artifacts"][0] for name, a in _output(first, "evaluate")["artifacts"].items()}
    assert set(artifacts["metrics"]["metadata"]) >= {"accuracy", "balanced_accuracy", "weighted_avg.auc"}
    classification = artifacts["classification"]["metadata"]
    assert len(classification["confusionMatrix"]["rows"]) == len(HAM10000_CLASSES)
    roc = classification["confidenceMetrics"]
    assert roc[0]["falsePositiveRate"] <= roc[-1]["falsePositiveRate"] and len(roc) >= 2
    assert "<html" in Path(artifacts["report"]["uri"]).read_text().lower()
    table = Path(artifacts["table"]["uri"]).read_text()
    assert table.startswith("balanced accuracy **") and "\n| Dis. | Precision | AUC |" in table  # headline, then table
    assert (first / "train" / "model" / "model.safetensors").is_file()
    curves = _output(first, "train")["artifacts"]["curves"]["artifacts"][0]  # the train task's HTML in the UI
    assert 'src="data:image/png;base64,' in Path(curves["uri"]).read_text()

    # Same data, same seed: the same model; the re-evaluated champion ties, and a tie keeps production.
    second = run_local("training", params, tmp_path / "root")
    assert _output(second, "compare-with-production")["parameterValues"]["Output"] == "keep"
    assert not (second / "register").exists()
    assert [v.version for v in registry.versions()] == ["v1"] and registry.production().version == "v1"


def test_ablation_pipeline_writes_table_1(sample, tmp_path):
    configs = [{"arch": "resnet10t", "soft_attention": False}, {"arch": "resnet10t", "soft_attention": True}]
    params = {k: v for k, v in TINY.items() if k != "arch"} | {"data_uri": str(sample), "configs": configs}
    run_dir = run_local("ablation", params, tmp_path / "root")
    artifacts = {name: a["artifacts"][0] for name, a in _output(run_dir, "ablation-table")["artifacts"].items()}
    markdown = Path(artifacts["table"]["uri"]).read_text()
    table = pd.read_csv(artifacts["table_csv"]["uri"])
    assert table.columns.tolist() == [
        "Dis.", "Precision resnet10t", "Precision resnet10t + SA", "AUC resnet10t", "AUC resnet10t + SA", "#",
    ]  # fmt: skip
    assert table["Dis."].tolist() == [c.upper() for c in HAM10000_CLASSES] + ["Avg", "W. Avg"]
    assert table["#"].iloc[-1] == table["#"].iloc[:7].sum() > 0
    assert all(row in markdown for row in ("| AKIEC |", "| Avg |", "| W. Avg |"))
