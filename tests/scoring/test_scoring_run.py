"""Scoring end to end: folder, zip and S3 sources; errors file; ISIC layout; evaluation; shards; model lookup."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _scoring_fixtures import PYTHON, REPO, cli_env, jpeg_bytes, make_archive, upload_folder, zip_folder

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.images import open_image
from skinattn.errors import DataError
from skinattn.inference import Predictor
from skinattn.scoring import OutputPaths, ScoreSettings, merge_outputs, score_source
from skinattn.scoring.tables import read_table

PROBS = [f"prob_{c}" for c in HAM10000_CLASSES]
FAST = ScoreSettings(batch_size=4, workers=0, device="cpu", chunk_size=5, n_bootstrap=0, progress=False)


def _expected(model_dir: Path, folder: Path, ids: list[str]) -> np.ndarray:
    """Probabilities from the independent single-image path (Predictor on PIL images)."""
    predictor = Predictor(model_dir)
    predictions = predictor.predict([open_image(str(folder / f"{i}.jpg")) for i in ids])
    return np.array([[p.probabilities[c] for c in HAM10000_CLASSES] for p in predictions])


def test_folder_scored_once_each_with_isic_layout_and_evaluation(
    model_dir: Path, archive: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, labels = archive
    out = tmp_path / "run" / "predictions.csv"
    result = score_source(str(folder), out, str(model_dir), FAST)

    table = read_table(out)
    assert sorted(table["image_id"]) == sorted(labels) and table["image_id"].is_unique
    assert list(table.columns) == ["image_id", "file", "label", *PROBS, "top_class", "model_version"]
    np.testing.assert_allclose(table[PROBS].sum(axis=1), 1.0, atol=1e-5)
    assert (table["top_class"] == table[PROBS].idxmax(axis=1).str.removeprefix("prob_")).all()
    assert dict(zip(table["image_id"], table["label"])) == labels
    np.testing.assert_allclose(table[PROBS].to_numpy(), _expected(model_dir, folder, list(table["image_id"])), atol=1e-5)
    assert table["model_version"].nunique() == 1 and table["model_version"][0].startswith(model_dir.name + "@")

    isic = pd.read_csv(result.isic)
    assert list(isic.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    np.testing.assert_allclose(isic["MEL"], table["prob_mel"])

    assert read_table(result.errors).empty
    summary = json.loads(result.summary.read_text())
    assert summary["scored"] == 12 and summary["errors"] == 0 and summary["skipped_non_images"] == 3
    metrics = json.loads((result.evaluation / "metrics.json").read_text())
    assert metrics["num_samples"] == 12
    assert metrics["accuracy"] == pytest.approx((table["top_class"] == table["label"]).mean())
    assert (result.evaluation / "report.html").is_file() and (result.evaluation / "table.md").is_file()
    assert not OutputPaths.for_out(out).work.exists()  # progress removed once the outputs are in place


def test_zip_with_corrupt_truncated_and_escaping_entries(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    labels = make_archive(folder, 6, labelled=False)
    good = jpeg_bytes(99)
    archive = zip_folder(
        folder,
        tmp_path / "download.zip",
        extra={
            "../../evil.jpg": good,
            "broken.jpg": b"this is not a jpeg",
            "truncated.jpg": good[: len(good) // 2],
            "empty.jpg": b"",
        },
    )
    out = tmp_path / "predictions.parquet"
    result = score_source(str(archive), out, str(model_dir), FAST)

    table = pd.read_parquet(out)
    assert sorted(table["image_id"]) == sorted(labels)
    errors = read_table(result.errors).set_index("file")["reason"]
    assert set(errors.index) == {"../../evil.jpg", "broken.jpg", "truncated.jpg", "empty.jpg"}
    assert "entry refused" in errors["../../evil.jpg"]
    assert "not a readable image" in errors["broken.jpg"]
    assert "truncated" in errors["truncated.jpg"]
    assert "empty file" in errors["empty.jpg"]
    assert result.evaluation is None  # no diagnoses in this archive
    assert result.scored == 6 and result.failed == 4


def test_s3_prefix_scores_like_the_folder(
    model_dir: Path, archive: tuple[Path, dict[str, str]], s3_env: dict[str, str], tmp_path: Path
) -> None:
    folder, labels = archive
    uri = upload_folder(folder, s3_env["AWS_ENDPOINT_URL"])
    local = read_table(score_source(str(folder), tmp_path / "local.csv", str(model_dir), FAST).predictions)
    # Two workers: each must open its own connection, not share the parent's pooled socket.
    remote_settings = ScoreSettings(batch_size=4, workers=2, device="cpu", chunk_size=5, n_bootstrap=0, progress=False)
    remote = read_table(score_source(uri, tmp_path / "s3.csv", str(model_dir), remote_settings).predictions)
    assert list(remote["image_id"]) == list(local["image_id"]) == sorted(labels)
    np.testing.assert_allclose(remote[PROBS].to_numpy(), local[PROBS].to_numpy(), atol=1e-6)
    assert list(remote["label"]) == list(local["label"])


def test_shards_merged_equal_the_unsharded_run(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 11)
    (folder / "bad.jpg").write_bytes(b"garbage")
    whole = score_source(str(folder), tmp_path / "whole.csv", str(model_dir), FAST)
    shard_outputs = [
        score_source(str(folder), tmp_path / f"shard{i}.csv", str(model_dir), FAST, shard=f"{i}/3").predictions
        for i in range(3)
    ]
    assert all(not (tmp_path / f"shard{i}_eval").exists() for i in range(3))  # evaluation only after the merge
    merged = merge_outputs(shard_outputs, tmp_path / "merged.csv", FAST)

    pd.testing.assert_frame_equal(read_table(merged.predictions), read_table(whole.predictions))
    pd.testing.assert_frame_equal(read_table(merged.errors), read_table(whole.errors))
    assert merged.evaluation is not None
    assert json.loads((merged.evaluation / "metrics.json").read_text())["accuracy"] == pytest.approx(
        json.loads((whole.evaluation / "metrics.json").read_text())["accuracy"]
    )


def test_merge_refuses_duplicates_and_mixed_model_versions(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 4, labelled=False)
    first = score_source(str(folder), tmp_path / "a.csv", str(model_dir), FAST).predictions
    with pytest.raises(DataError, match="appears twice"):
        merge_outputs([first, first], tmp_path / "m.csv", FAST)
    other = tmp_path / "b.csv"
    table = read_table(first)
    table["model_version"] = "v9"
    table["image_id"] += "-other"
    table.to_csv(other, index=False)
    with pytest.raises(DataError, match="different model versions"):
        merge_outputs([first, other], tmp_path / "m.csv", FAST)
    assert not (tmp_path / "m.csv").exists()  # a refused merge writes nothing


def test_registry_production_model_is_looked_up_and_named(model_dir: Path, tmp_path: Path) -> None:
    from skinattn.registry import Registry

    registry = Registry(str(tmp_path / "registry"))
    registry.register(model_dir, {"accuracy": 0.5})
    registry.register(model_dir, {"accuracy": 0.6})
    registry.promote("v1", force=True)
    folder = tmp_path / "download"
    make_archive(folder, 3, labelled=False)
    production = score_source(str(folder), tmp_path / "p.csv", "production", FAST, registry_root=str(tmp_path / "registry"))
    latest = score_source(str(folder), tmp_path / "l.csv", "latest", FAST, registry_root=str(tmp_path / "registry"))
    assert set(read_table(production.predictions)["model_version"]) == {"v1"}
    assert set(read_table(latest.predictions)["model_version"]) == {"v2"}


def test_resuming_with_another_model_or_chunking_is_refused(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 3, labelled=False)
    out = tmp_path / "p.csv"
    work = OutputPaths.for_out(out).work
    work.mkdir()
    (work / "plan.json").write_text(json.dumps({"format": "skinattn-score-plan", "chunk_size": 99}))
    with pytest.raises(DataError, match="different run"):
        score_source(str(folder), out, str(model_dir), FAST)
    restarted = score_source(str(folder), out, str(model_dir), ScoreSettings(**{**FAST.__dict__, "restart": True}))
    assert restarted.scored == 3


def test_cli_scores_and_reports_bad_input_in_one_line(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 5)
    command = [PYTHON, "-m", "skinattn", "score", str(folder), "--model", str(model_dir), "--workers", "1",
               "--batch-size", "2", "--bootstrap", "0", "--quiet"]
    done = subprocess.run([*command, "--out", str(tmp_path / "p.csv")], capture_output=True, text=True, env=cli_env(),
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "scored 5 image(s)" in done.stdout and "evaluation of the labelled images" in done.stdout
    assert len(read_table(tmp_path / "p.csv")) == 5

    bad = subprocess.run([*command, "--out", str(tmp_path / "p.txt")], capture_output=True, text=True, env=cli_env(),
                         cwd=REPO, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"skinattn score: error: {tmp_path / 'p.txt'}: the output must end in .csv or .parquet"]
