"""The batch-scoring pipeline end to end with kfp.local, started the way a user does: ``skinattn pipeline run
--local --pipeline batch_scoring``, against an unsharded ``skinattn score`` of the same archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _batch_scoring_data import CORRUPT_ID, make_isic_download, make_registry

from skinattn.scoring.tables import read_table

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def skinattn(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"BENTOML_DO_NOT_TRACK": "True"}
    return subprocess.run([sys.executable, "-m", "skinattn", *args], capture_output=True, text=True, timeout=500,
                          cwd=REPO_ROOT, env=env)  # fmt: skip


def test_three_shards_merge_into_the_unsharded_result(tmp_path):
    labels = make_isic_download(tmp_path / "archive", 20)
    registry = make_registry(tmp_path / "registry", tmp_path, reference_images=tmp_path / "archive")
    params = {
        "source_uri": tmp_path / "archive", "registry_root": registry.uri, "model": "production", "num_shards": 3,
        "batch_size": 4, "workers": 0, "gpus_per_shard": 0, "output_format": "csv", "bootstrap": 0,
        "output_uri": tmp_path / "published",
    }  # fmt: skip
    args = [arg for key, value in params.items() for arg in ("--param", f"{key}={value}")]
    run = skinattn("pipeline", "run", "--local", "--pipeline", "batch_scoring", *args,
                   "--pipeline-root", str(tmp_path / "kfp"))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = Path(run.stdout.strip().rsplit("outputs in ", 1)[1])

    # gpus_per_shard=0: the CPU branch ran, one score task per shard, and no GPU task
    assert len(list(run_dir.glob("for-loop-*-iteration-*/score-shard"))) == 3
    assert not list(run_dir.glob("for-loop-*-iteration-*/score-shard-gpu"))
    [merge_dir] = run_dir.glob("merge-scores*")
    outputs = json.loads((merge_dir / "executor_output.json").read_text())["artifacts"]
    artifact = {name: Path(value["artifacts"][0]["uri"]) for name, value in outputs.items()}

    single = tmp_path / "single" / "predictions.csv"
    scored = skinattn(
        "score", str(tmp_path / "archive"), "--out", str(single), "--model", "production", "--registry", registry.uri,
        "--workers", "0", "--batch-size", "4", "--bootstrap", "0", "--quiet",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-3000:]

    merged = read_table(artifact["predictions"] / "predictions.csv")
    assert merged["image_id"].is_unique and sorted(merged["image_id"]) == sorted(labels)  # every image exactly once
    pd.testing.assert_frame_equal(merged, read_table(single), check_exact=False, atol=1e-6)
    assert set(merged["model_version"]) == {"v1"}  # "production", resolved once
    # ... and recorded as the run's link to the registry (lineage), like register's Model artifact
    resolved = json.loads((run_dir / "resolve-scoring-model" / "executor_output.json").read_text())
    lineage = resolved["artifacts"]["scoring_model"]["artifacts"][0]["metadata"]
    assert lineage["registry_uri"] == registry.location(registry.get("v1"))
    assert (lineage["version"], lineage["requested"]) == ("v1", "production")

    errors = pd.read_csv(artifact["errors"], dtype=str, keep_default_na=False)  # a CSV named after the output
    assert errors["image_id"].tolist() == [CORRUPT_ID] and "truncated" in errors["reason"][0]

    summary = artifact["summary"].read_text()
    assert "| model version | `v1` |" in summary and "| scored | 20 |" in summary
    assert "| errors (refused or unreadable) | 1 |" in summary
    assert "## Evaluation on the 20 labelled image(s)" in summary
    # drift against the reference stored with v1 (its predictions on this archive): none
    assert "## Drift against the training data\n\n**looks like the training data**" in summary
    metrics = outputs["metrics"]["artifacts"][0]["metadata"]
    assert metrics["drift_level"] == 0 and metrics["drift_class_psi"] == 0.0
    assert metrics["drift_error_share"] == pytest.approx(1 / 21, abs=1e-6)
    merged_summary = json.loads((artifact["predictions"] / "predictions_summary.json").read_text())
    assert merged_summary["drift"] == json.loads((tmp_path / "single" / "predictions_summary.json").read_text())["drift"]
    assert metrics["accuracy"] == pytest.approx((merged["top_class"] == merged["label"]).mean(), abs=1e-6)
    assert len(outputs["classification"]["artifacts"][0]["metadata"]["confusionMatrix"]["rows"]) == 7

    published = {p.name for p in (tmp_path / "published").iterdir()}
    assert {"predictions.csv", "predictions_errors.csv", "predictions_isic.csv", "predictions_eval",
            "predictions_drift.json", "predictions_drift.png"} <= published  # fmt: skip
    pd.testing.assert_frame_equal(read_table(tmp_path / "published" / "predictions.csv"), merged)

