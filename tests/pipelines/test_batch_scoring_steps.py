"""The batch-scoring pipeline's steps as plain functions (skinattn.steps.scoring), without kfp.

Shard → score each shard → merge must give exactly what one unsharded ``score_source`` run gives, and the
merge must refuse anything but one complete set of shards of one listing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _batch_scoring_data import CORRUPT_ID, make_isic_download, make_registry

from skinattn.errors import DataError
from skinattn.registry.errors import RegistryError
from skinattn.scoring import ScoreSettings, score_source
from skinattn.scoring.shards import SHARD_LISTING_FILE, SHARD_RESULT_FILE
from skinattn.scoring.tables import read_table
from skinattn.steps import scoring as steps

SHARDS = 3


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """An archive of 20 images + 1 corrupt one, a registry with production v1, and the archive scored in
    three shards by the pipeline's steps (not merged yet)."""
    root = tmp_path_factory.mktemp("batch")
    labels = make_isic_download(root / "archive", 20)
    registry = make_registry(root / "registry", root, reference_images=root / "archive")
    shards_dir = root / "shards"
    names = steps.shard_archive_step(str(root / "archive"), float(SHARDS), shards_dir)  # float: as kfp.local
    model = steps.resolve_scoring_model("production", str(root / "registry"))
    scored = []
    for name in names:
        out = root / "scored" / name
        steps.score_shard_step(shards_dir, name, model, registry.uri, out, batch_size=4, workers=0, gpus=0)
        scored.append(str(out))
    return {"root": root, "labels": labels, "registry": registry, "shards": shards_dir, "names": names,
            "model": model, "scored": scored}  # fmt: skip


def test_listing_is_split_into_contiguous_shards(world):
    assert world["names"] == [f"shard-{i:04d}-of-{SHARDS:04d}.json" for i in range(SHARDS)]
    listing = json.loads((world["shards"] / SHARD_LISTING_FILE).read_text())
    assert listing["listed"] == 21 and listing["labelled"] == 20 and listing["skipped_non_images"] == 3
    sizes = [json.loads((Path(s) / SHARD_RESULT_FILE).read_text()) for s in world["scored"]]
    assert [s["index"] for s in sizes] == [0, 1, 2]
    assert sorted(s["scored"] + s["errors"] for s in sizes) == [7, 7, 7]


def test_merged_shards_equal_an_unsharded_run(world, tmp_path):
    # The fan-in gives no order guarantee: hand the shards over reversed; the merge must restore shard order.
    out = tmp_path / "merged"
    summary = steps.merge_shards_step(world["shards"], world["scored"][::-1], out, "csv", bootstrap=0)
    single = score_source(str(world["root"] / "archive"), tmp_path / "single" / "predictions.csv", "v1",
                          ScoreSettings(batch_size=4, workers=0, device="cpu", n_bootstrap=0, progress=False),
                          registry_root=world["registry"].uri)  # fmt: skip

    merged = read_table(out / "predictions.csv")
    assert merged["image_id"].is_unique and sorted(merged["image_id"]) == sorted(world["labels"])
    pd.testing.assert_frame_equal(merged, read_table(single.predictions), check_exact=False, atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(out / "predictions_isic.csv"), pd.read_csv(single.isic), atol=1e-6)
    errors = read_table(out / "predictions_errors.csv")
    assert errors["image_id"].tolist() == [CORRUPT_ID] and errors.equals(read_table(single.errors))
    assert set(merged["model_version"]) == {"v1"} and world["model"] == "v1"

    assert (summary["listed"], summary["scored"], summary["errors"], summary["labelled"]) == (21, 20, 1, 20)
    assert summary["merged_from"] == [n.removesuffix(".json") for n in world["names"]]
    metrics = json.loads((Path(summary["evaluation"]) / "metrics.json").read_text())
    assert metrics["num_samples"] == 20
    assert metrics["accuracy"] == pytest.approx((merged["top_class"] == merged["label"]).mean())
    on_disk = json.loads((out / "predictions_summary.json").read_text())
    assert on_disk["predictions"] == "predictions.csv" and on_disk["evaluation"] == "predictions_eval"
    # Drift against the reference stored with v1 (its predictions on these very images): the same.
    assert (on_disk["drift_file"], on_disk["drift_figure"]) == ("predictions_drift.json", "predictions_drift.png")
    assert (out / "predictions_drift.png").is_file()
    drift = json.loads((out / "predictions_drift.json").read_text())
    assert drift["reference"]["images"] == 20 and drift["class_psi"] == pytest.approx(0.0, abs=1e-9)
    assert summary["drift"]["level"] == "none" and summary["drift"]["error_share"] == pytest.approx(1 / 21, abs=1e-6)
    assert json.loads(single.summary.read_text())["drift"] == summary["drift"]
    logged = steps.drift_metrics(summary)
    assert logged["drift_level"] == 0 and logged["drift_class_psi"] == 0.0 and logged["drift_error_share"] == pytest.approx(0.047619)
    # (+ drift_chi_square_p_value when two classes or more are predicted: this random v1 predicts one)
    assert {"drift_class_psi", "drift_confidence_psi", "drift_error_share", "drift_level"} <= set(logged)

    markdown = steps.write_scoring_summary(summary, tmp_path / "ui" / "summary.md")
    assert (tmp_path / "ui" / "summary.md").read_text() == markdown
    assert "| model version | `v1` |" in markdown and "| errors (refused or unreadable) | 1 |" in markdown
    assert summary["model_arch"] == "resnet10t" and "| model | resnet10t" in markdown  # not only path and hash
    assert "## Evaluation on the 20 labelled image(s)" in markdown and "| Avg |" in markdown
    assert "## Drift against the training data\n\n**looks like the training data**" in markdown
    assert "1 of 21 files (4.8%) could not be scored" in markdown and "| **all classes** |" in markdown


def test_merge_refuses_a_partial_repeated_or_foreign_set_of_shards(world, tmp_path):
    scored = world["scored"]
    with pytest.raises(DataError, match=r"shard\(s\) \[1\] of 3 have no output"):
        steps.merge_shards_step(world["shards"], [scored[0], scored[2]], tmp_path / "a", "csv", 0)
    with pytest.raises(DataError, match="shard 0 was scored twice"):
        steps.merge_shards_step(world["shards"], [scored[0], *scored], tmp_path / "b", "csv", 0)
    foreign = tmp_path / "foreign"
    shutil.copytree(scored[1], foreign)
    info = json.loads((foreign / SHARD_RESULT_FILE).read_text()) | {"source": "s3://other/archive"}
    (foreign / SHARD_RESULT_FILE).write_text(json.dumps(info))
    with pytest.raises(DataError, match="does not belong to this listing"):
        steps.merge_shards_step(world["shards"], [scored[0], str(foreign), scored[2]], tmp_path / "c", "csv", 0)
    with pytest.raises(DataError, match="output_format='xlsx'"):
        steps.merge_shards_step(world["shards"], scored, tmp_path / "d", "xlsx", 0)


def test_bad_parameters_are_refused_with_the_reason(world, tmp_path):
    with pytest.raises(DataError, match="num_shards must be at least 1"):
        steps.shard_archive_step(str(world["root"] / "archive"), 0, tmp_path / "shards")
    with pytest.raises(DataError, match="gpus_per_shard=2: a shard is scored on one device"):
        steps.score_shard_step(world["shards"], world["names"][0], "v1", world["registry"].uri,
                               tmp_path / "out", batch_size=4, workers=0, gpus=2)  # fmt: skip
    with pytest.raises(RegistryError, match="no production version"):
        steps.resolve_scoring_model("production", str(tmp_path / "empty-registry"))


def test_model_is_resolved_once_to_a_concrete_version(world):
    registry = world["registry"]
    assert steps.resolve_scoring_model("latest", registry.uri) == "v1"
    assert steps.resolve_scoring_model("v1", registry.uri) == "v1"
    model_dir = str(world["root"] / "model")
    assert steps.resolve_scoring_model(model_dir, "") == model_dir  # a model folder is used in place
