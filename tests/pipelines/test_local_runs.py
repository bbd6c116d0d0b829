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


@pytest.fixture(scope="module")
def external_set(tmp_path_factory) -> Path:
    """An external test set in another layout (ISIC 2017) with a class the models do not have (sk)."""
    from _external_collection import make_isic2017_external

    return make_isic2017_external(tmp_path_factory.mktemp("external"), per_class=3)[0]


def _output(run_dir: Path, task: str) -> dict:
    return json.loads((run_dir / task / "executor_output.json").read_text())


def test_training_pipeline_promotes_first_and_keeps_an_equal_model(sample, external_set, tmp_path):
    registry_root = str(tmp_path / "registry")
    params = TINY | {"data_uri": str(sample), "registry_root": registry_root, "promotion_metric": "balanced_accuracy"}
    # Issue 14: evaluated on an external test set too, and the gate decides on it.
    params |= {"external_test_uri": str(external_set), "external_test_format": "isic2017", "promotion_source": "external"}

    first = run_local("training", params, tmp_path / "root")
    assert _output(first, "compare-with-production")["parameterValues"]["Output"] == "promote"
    assert _output(first, "register")["parameterValues"]["Output"] == "v1"
    registry = Registry(registry_root)
    production = registry.production()
    assert production is not None and production.version == "v1"
    assert production.run_id and production.data_fingerprint.startswith("sha256:")
    assert production.params["model"]["arch"] == "resnet10t" and "balanced_accuracy" in production.metrics
    assert "external.balanced_accuracy" in production.metrics and "shift.per_class_recall.mel" in production.metrics
    # Issue 14, item 4: the registered version's model card, with subgroups from the sample's sex/age/site
    # columns, the external test set and the training data's licence and counts.
    card = registry.model_card(production)
    assert "| sex | male |" in card and "| age | >=70 |" in card and "| site | " in card
    assert "### Metrics on the external test set" in card and "- Licence: CC BY-NC 4.0" in card
    assert "Split protocol: grouped" in card and "| test | " in card

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
    assert set(artifacts["metrics"]["metadata"]) >= {"external.accuracy", "external.balanced_accuracy"}
    evaluation = Path(artifacts["evaluation"]["uri"])
    external = json.loads((evaluation / "metrics.json").read_text())["external"]
    assert external["excluded"]["labels"] == {"sk": 3} and external["format"] == "isic2017"
    report = Path(artifacts["report"]["uri"]).read_text()
    assert "External test set: internal vs external" in report and "excluded: 3 rows with labels sk" in report
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

    # Same data, same seed: the same model; the champion re-evaluated on the same external set ties, and a
    # tie keeps production.
    second = run_local("training", params, tmp_path / "root")
    assert _output(second, "compare-with-production")["parameterValues"]["Output"] == "keep"
    assert not (second / "register").exists()
    assert [v.version for v in registry.versions()] == ["v1"] and registry.production().version == "v1"


def test_ablation_pipeline_repeats_each_arm_and_writes_the_paired_verdict_and_table_1(sample, tmp_path):
    configs = [{"arch": "resnet10t", "soft_attention": False}, {"arch": "resnet10t", "soft_attention": True}]
    params = {k: v for k, v in TINY.items() if k != "arch"} | {
        "data_uri": str(sample), "configs": configs, "seeds": 2, "bootstrap": 50,
    }  # fmt: skip
    run_dir = run_local("ablation", params, tmp_path / "root")
    cells = _output(run_dir, "ablation-cells")["parameterValues"]["Output"]
    assert len(cells) == 4 and len({int(c["seed"]) for c in cells}) == 2  # 2 configurations x 2 training seeds
    artifacts = {name: a["artifacts"][0] for name, a in _output(run_dir, "ablation-table")["artifacts"].items()}
    markdown = Path(artifacts["table"]["uri"]).read_text()
    # the verdict first: one sentence about the one architecture, with the paired CI and both seeds
    first = markdown.splitlines()[0]
    assert first.startswith("**Verdict.** On this data Soft Attention ") and "resnet10t beyond noise: balanced accuracy " in first
    assert "95 % CI " in first and "2 seeds, higher in " in first and "McNemar p" in first
    assert "### Soft Attention − baseline, paired by test image and seed — test split grouped by lesion" in markdown
    paired = pd.read_csv(Path(artifacts["paired"]["uri"]) / "paired.csv")
    assert paired["seeds"].tolist() == [2]
    low, high = paired["Δ balanced accuracy CI low"].iloc[0], paired["Δ balanced accuracy CI high"].iloc[0]
    assert low <= paired["Δ balanced accuracy (points)"].iloc[0] <= high
    summary = json.loads((Path(artifacts["paired"]["uri"]) / "paired.json").read_text())
    assert summary["split_protocol"] == "grouped" and summary["bootstrap"]["resamples"] == 50
    assert 'src="data:image/png;base64,' in Path(artifacts["report"]["uri"]).read_text()
    # every cell was evaluated on the same test images and records its training seed
    evaluations = sorted(run_dir.glob("**/evaluation/metrics.json"))
    runs = [json.loads(p.read_text())["run"] for p in evaluations]
    assert sorted((r["soft_attention"], r["training_seed"]) for r in runs) == sorted(
        (bool(c["soft_attention"]), int(c["seed"])) for c in cells
    )
    assert {r["images"] for r in runs} == {summary["test_images"]}

    table = pd.read_csv(artifacts["table_csv"]["uri"])
    assert table.columns.tolist() == [
        "Dis.", "Precision resnet10t", "Precision resnet10t + SA", "AUC resnet10t", "AUC resnet10t + SA", "#",
    ]  # fmt: skip
    assert table["Dis."].tolist() == [c.upper() for c in HAM10000_CLASSES] + ["Avg", "W. Avg"]
    assert table["#"].iloc[-1] == table["#"].iloc[:7].sum() > 0
    assert all(row in markdown for row in ("| AKIEC |", "| Avg |", "| W. Avg |"))
