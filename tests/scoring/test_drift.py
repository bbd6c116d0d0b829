"""Drift reports: the statistics against hand-computed values, the flag, and scoring runs that write them
(a model with a reference on the images it was made from, on a one-class and a degenerate collection, and a
model without one); the CLI and a shard merge write them too."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from _drift_reference import save_with_reference, uniform_jpegs
from _scoring_fixtures import PYTHON, REPO, cli_env, make_archive

from skinattn.evaluation.distribution import (
    CONFIDENCE_EDGES,
    PredictionCounts,
    confidence_bins,
    read_reference,
    reference_distribution,
)
from skinattn.models import create_model, read_card
from skinattn.scoring import OutputPaths, ScoreSettings, merge_outputs, score_source
from skinattn.scoring import drift
from skinattn.scoring.tables import read_table

FAST = ScoreSettings(batch_size=8, workers=0, device="cpu", chunk_size=16, n_bootstrap=0, progress=False)
NAMES = ["mel", "nv", "bcc"]


# ---- the statistics, by hand ---------------------------------------------------------------------------


def test_psi_matches_the_hand_computed_value() -> None:
    # shares e = (.5, .3, .2), a = (.3, .3, .4): (-.2) ln(.6) + 0 + (.2) ln(2)
    expected = -0.2 * math.log(0.6) + 0.2 * math.log(2.0)
    assert expected == pytest.approx(0.2407946, abs=1e-7)
    assert drift.psi([50, 30, 20], [30, 30, 40], pseudo_count=0) == pytest.approx(expected, abs=1e-12)
    assert drift.psi([50, 30, 20], [50, 30, 20]) == 0.0
    # Counts, not shares, are what is compared: the same shares at another size are no change.
    assert drift.psi([50, 30, 20], [500, 300, 200], pseudo_count=0) == pytest.approx(0.0, abs=1e-12)


def test_psi_smoothing_keeps_empty_bins_finite() -> None:
    # (1, 0) vs (0, 1) with 0.5 added per bin: e = (.75, .25), a = (.25, .75) -> .5 ln 3 + .5 ln 3 = ln 3
    assert drift.psi([1, 0], [0, 1]) == pytest.approx(math.log(3.0), abs=1e-12)
    assert math.isfinite(drift.psi([10, 0, 0], [0, 0, 10]))
    np.testing.assert_allclose(drift.smoothed_shares([1, 0]), [0.75, 0.25])
    # A bin neither side fills is no difference, whatever the two sample sizes.
    assert drift.psi([50, 0, 50], [2, 0, 2]) == pytest.approx(0.0, abs=1e-12)
    assert drift.class_psi([50, 0, 50], [3, 0, 1])[1] == 0.0


def test_class_psi_is_one_class_against_the_others() -> None:
    mel = -0.2 * math.log(0.3 / 0.5) + 0.2 * math.log(0.7 / 0.5)  # (.5, .5) -> (.3, .7)
    bcc = 0.2 * math.log(0.4 / 0.2) - 0.2 * math.log(0.6 / 0.8)  # (.2, .8) -> (.4, .6)
    np.testing.assert_allclose(drift.class_psi([50, 30, 20], [30, 30, 40], pseudo_count=0), [mel, 0.0, bcc], atol=1e-12)
    assert mel == pytest.approx(0.1694596, abs=1e-7) and bcc == pytest.approx(0.1961658, abs=1e-7)


def test_chi_square_of_homogeneity_by_hand() -> None:
    # 2 x 3 table, rows 100 each, column totals 80, 60, 60: expected 40, 30, 30 per row.
    # chi2 = 2 * 10^2/40 + 0 + 2 * 10^2/30 = 11.667 with 2 dof, whose survival function is exp(-x/2).
    result = drift.chi_square([50, 30, 20], [30, 30, 40])
    assert result["statistic"] == pytest.approx(5 + 20 / 3, abs=1e-9) and result["dof"] == 2
    assert result["p_value"] == pytest.approx(math.exp(-(5 + 20 / 3) / 2), rel=1e-9)
    # A class absent from both sides is left out; 2 x 2 then has 1 dof: p = erfc(sqrt(x / 2)).
    two = drift.chi_square([10, 0, 10], [5, 0, 15])
    statistic = 2 * 2.5**2 / 7.5 + 2 * 2.5**2 / 12.5
    assert two["statistic"] == pytest.approx(statistic) and two["dof"] == 1
    assert two["p_value"] == pytest.approx(math.erfc(math.sqrt(statistic / 2)), rel=1e-9)
    assert drift.chi_square([0, 0], [3, 4]) == {"statistic": None, "dof": None, "p_value": None}
    assert drift.chi_square([5, 0], [3, 0])["p_value"] is None  # one class: nothing to test


def test_psi_bands_follow_the_convention() -> None:
    levels = [drift.psi_level(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501, 3.0)]
    assert levels == ["none", "none", "moderate", "moderate", "major", "major"]


def test_confidence_bins_and_counts() -> None:
    assert CONFIDENCE_EDGES[0] == 0.0 and CONFIDENCE_EDGES[-1] == 1.0 and len(CONFIDENCE_EDGES) == 11
    assert confidence_bins(np.array([0.0, 0.0999, 0.1, 0.55, 0.9, 1.0])).tolist() == [0, 0, 1, 5, 9, 9]
    counts = PredictionCounts.of(np.array([[0.7, 0.2, 0.1], [0.1, 0.85, 0.05], [0.34, 0.33, 0.33]]), NAMES)
    assert counts.predicted.tolist() == [2, 1, 0]
    assert counts.confidence.tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 1, 0]
    assert counts.mean_confidence == pytest.approx((0.7 + 0.85 + 0.34) / 3)
    again = PredictionCounts.from_dict(json.loads(json.dumps(counts.to_dict())))
    assert again.predicted.tolist() == [2, 1, 0] and again.confidence.tolist() == counts.confidence.tolist()
    reference = reference_distribution(np.array([0, 0, 2]), counts_probabilities(), NAMES)
    assert reference["labels"] == {"mel": 2, "nv": 0, "bcc": 1} and reference["images"] == 3
    assert read_reference({"metadata": {"reference": reference}}) == reference
    assert read_reference({"metadata": {}}) is None and read_reference({}) is None


def counts_probabilities() -> np.ndarray:
    return np.array([[0.7, 0.2, 0.1], [0.1, 0.85, 0.05], [0.34, 0.33, 0.33]])


# ---- the flag ----------------------------------------------------------------------------------------


def _counts(predicted: list[int], confidence: list[int], mean: float) -> PredictionCounts:
    counts = PredictionCounts(list(NAMES), np.array(predicted), np.array(confidence))
    counts.confidence_sum = mean * sum(predicted)
    return counts


REFERENCE = reference_distribution(np.zeros(0), np.zeros((0, 3)), NAMES) | _counts(
    [300, 500, 200], [0, 0, 0, 0, 50, 100, 150, 200, 250, 250], 0.8
).to_dict()


def test_the_same_distribution_looks_like_the_training_data() -> None:
    report = drift.compare(REFERENCE, _counts([150, 250, 100], [0, 0, 0, 0, 25, 50, 75, 100, 125, 125], 0.8))
    assert report["level"] == "none" and report["message"] == "looks like the training data"
    assert report["class_psi"] < 0.01 and report["confidence"]["psi"] < 0.01  # smoothing: empty bins, other sizes
    assert report["chi_square"]["p_value"] > 0.9 and report["notes"] == []


def test_a_shifted_collection_is_described_in_words() -> None:
    # mel 3x as often, nv much rarer, and confidence down to the 0.4-0.7 bins.
    report = drift.compare(REFERENCE, _counts([900, 50, 50], [0, 0, 0, 0, 300, 300, 300, 100, 0, 0], 0.55), errors=50)
    assert report["level"] == "major" and report["class_level"] == "major" and report["confidence"]["level"] == "major"
    assert report["message"].startswith("differs from the training data: class mel predicted 3.0× as often (90% vs 30%)")
    assert "class nv predicted 0.1× as often (5.0% vs 50%)" in report["message"]
    assert report["message"].endswith("confidence lower (mean 0.55 vs 0.80)")
    assert report["inputs"] == {"files": 1050, "scored": 1000, "errors": 50, "error_share": pytest.approx(0.047619, abs=1e-6),
                                "reference_error_share": 0.0}  # fmt: skip
    assert report["notes"] == ["50 of 1050 files (4.8%) could not be scored (refused or undecodable; none on the "
                               "validation split): see the errors file"]  # fmt: skip
    mel = report["classes"][0]
    assert (mel["reference_share"], mel["scored_share"], mel["ratio"]) == (0.3, 0.9, 3.0) and mel["level"] == "major"
    assert report["chi_square"]["p_value"] < 1e-6


def test_a_moderate_shift_and_a_class_never_seen_in_validation() -> None:
    reference = REFERENCE | {"predicted": {"mel": 300, "nv": 700, "bcc": 0}}
    report = drift.compare(reference, _counts([300, 670, 30], [0, 0, 0, 0, 50, 100, 150, 200, 250, 250], 0.8))
    assert report["level"] == report["class_level"] == "moderate" and report["confidence"]["level"] == "none"
    assert report["message"] == ("differs somewhat from the training data: class bcc predicted for 3.0% of images, "
                                 "never on the validation split")  # fmt: skip
    assert report["classes"][2]["ratio"] is None


def test_no_reference_and_nothing_scored_are_said_plainly() -> None:
    counts = _counts([5, 3, 2], [0, 0, 0, 0, 0, 0, 0, 5, 5, 0], 0.8)
    report = drift.compare(None, counts, errors=0)
    assert report["level"] == "no-reference" and report["message"] == "no reference stored with this model"
    assert report["scored"]["predicted"] == {"mel": 5, "nv": 3, "bcc": 2} and report["class_psi"] is None
    foreign = drift.compare(REFERENCE | {"predicted": {"a": 1, "b": 2, "c": 3}}, counts)
    assert foreign["level"] == "no-reference" and "not the model's" in foreign["message"]
    empty = drift.compare(REFERENCE, PredictionCounts.empty(NAMES), errors=4)
    assert empty["level"] == "no-images" and empty["inputs"]["error_share"] == 1.0
    markdown = "\n".join(drift.markdown_lines(report))
    assert "**no reference stored with this model**" in markdown and "mel 50%, nv 30%, bcc 20%" in markdown


def test_the_report_files_and_markdown(tmp_path: Path) -> None:
    report = drift.compare(REFERENCE, _counts([900, 50, 50], [0, 0, 0, 0, 300, 300, 300, 100, 0, 0], 0.55), errors=50)
    drift.write_drift(report, tmp_path / "d.json", tmp_path / "d.png")
    assert json.loads((tmp_path / "d.json").read_text())["level"] == "major"
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = drift.markdown_lines(report)
    assert markdown[0] == "## Drift against the training data" and "| mel | 30% | 90% | 3.0× | " in "\n".join(markdown)
    assert any(line.startswith("| **confidence** | mean 0.80 | mean 0.55 |") for line in markdown)
    entry = drift.summary_entry(report)
    assert entry["level"] == "major" and entry["reference_images"] == 1000 and entry["error_share"] == report["inputs"]["error_share"]


# ---- scoring runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """40 archive images and a model saved with its own predictions on them as reference. Random weights
    with a scaled-up classifier, so that predictions spread over classes and confidences as a trained
    model's do (a plain random model gives every image the same near-uniform answer)."""
    root = tmp_path_factory.mktemp("drift")
    labels = make_archive(root / "archive", 40)
    torch.manual_seed(0)
    model = create_model("resnet10t", img_size=32)
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        classifier.weight.mul_(300.0)
        classifier.bias.zero_()
    model_dir = save_with_reference(model, root / "model", root / "archive", labels)
    return {"root": root, "labels": labels, "model": model_dir}


def _report(result) -> dict:
    return json.loads(result.drift.read_text(encoding="utf-8"))


def test_the_reference_images_look_like_the_training_data(reference_world: dict, tmp_path: Path) -> None:
    reference = read_reference(read_card(reference_world["model"]))
    assert reference is not None and reference["images"] == 40 and sum(reference["labels"].values()) == 40
    assert sum(1 for n in reference["predicted"].values() if n) >= 2  # the premise: predictions spread out
    result = score_source(str(reference_world["root"] / "archive"), tmp_path / "p.csv", str(reference_world["model"]), FAST)
    report = _report(result)
    assert result.drift_level == report["level"] == "none" and report["message"] == "looks like the training data"
    assert report["scored"]["predicted"] == reference["predicted"]
    assert report["class_psi"] == pytest.approx(0.0, abs=1e-9) and report["confidence"]["psi"] < 0.1
    summary = json.loads(result.summary.read_text())
    assert summary["drift"]["level"] == "none" and summary["drift"]["reference_images"] == 40
    assert summary["drift_file"] == str(OutputPaths.for_out(tmp_path / "p.csv").drift) == str(tmp_path / "p_drift.json")
    assert (tmp_path / "p_drift.png").read_bytes()[:4] == b"\x89PNG"


def test_a_one_class_collection_differs(reference_world: dict, tmp_path: Path) -> None:
    archive = reference_world["root"] / "archive"
    table = read_table(score_source(str(archive), tmp_path / "all.csv", str(reference_world["model"]), FAST).predictions)
    rare = table["top_class"].value_counts().index[-1]  # the least often predicted class
    folder = tmp_path / "one-class"
    folder.mkdir()
    for copy in range(4):  # the few images of that class, several times over
        for image_id in table.loc[table["top_class"] == rare, "image_id"]:
            shutil.copy(archive / f"{image_id}.jpg", folder / f"{image_id}_{copy}.jpg")
    report = _report(score_source(str(folder), tmp_path / "p.csv", str(reference_world["model"]), FAST))
    assert report["level"] == "major" and report["scored"]["predicted"][rare] == report["scored"]["images"]
    assert report["message"].startswith(f"differs from the training data: class {rare} predicted ")
    row = next(r for r in report["classes"] if r["class"] == rare)
    assert row["ratio"] == pytest.approx(1 / row["reference_share"], rel=1e-3) and row["level"] == "major"


def test_degenerate_images_and_undecodable_files_differ(reference_world: dict, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    uniform_jpegs(folder, 24)
    for n in range(3):
        (folder / f"broken_{n}.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = score_source(str(folder), tmp_path / "p.csv", str(reference_world["model"]), FAST)
    report = _report(result)
    assert report["level"] in {"moderate", "major"} and report["message"].startswith("differs")
    assert report["inputs"]["errors"] == 3 and report["inputs"]["error_share"] == pytest.approx(3 / 27, abs=1e-6)
    assert any("3 of 27 files (11%) could not be scored" in note for note in report["notes"])


def test_a_model_without_reference_scores_and_says_so(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    make_archive(folder, 6, labelled=False)
    result = score_source(str(folder), tmp_path / "p.parquet", str(model_dir), FAST)
    assert result.scored == 6 and result.drift_level == "no-reference"
    summary = json.loads(result.summary.read_text())
    assert summary["drift"]["message"] == "no reference stored with this model"
    assert summary["drift"]["class_psi"] is None and summary["drift"]["error_share"] == 0.0
    report = _report(result)
    assert report["reference"] is None and report["scored"]["images"] == 6
    assert (tmp_path / "p_drift.png").is_file()


def test_shard_merge_compares_with_the_reference_the_shards_carry(reference_world: dict, tmp_path: Path) -> None:
    archive = str(reference_world["root"] / "archive")
    whole = score_source(archive, tmp_path / "whole.csv", str(reference_world["model"]), FAST)
    shards = [score_source(archive, tmp_path / f"s{i}.csv", str(reference_world["model"]), FAST, shard=f"{i}/3").predictions
              for i in range(3)]  # fmt: skip
    merged = merge_outputs(shards, tmp_path / "merged.csv", FAST)
    together, apart = _report(merged), _report(whole)
    for key in ("level", "message", "classes", "class_psi", "chi_square", "reference", "inputs"):
        assert together[key] == apart[key], key
    assert together["scored"]["predicted"] == apart["scored"]["predicted"]
    assert together["scored"]["confidence"] == apart["scored"]["confidence"]
    assert merged.drift_level == "none"
    (tmp_path / "s1_drift.json").unlink()  # shard outputs of an older skinattn: no report beside them
    older = merge_outputs(shards, tmp_path / "older.csv", FAST)
    assert older.drift_level == "no-reference" and "no drift report beside" in _report(older)["message"]


def test_cli_prints_the_flag_and_writes_the_files(reference_world: dict, tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "skinattn", "score", str(reference_world["root"] / "archive"), "--model",
         str(reference_world["model"]), "--out", str(tmp_path / "p.csv"), "--workers", "0", "--bootstrap", "0",
         "--quiet"],
        capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"drift: looks like the training data -> {tmp_path / 'p_drift.json'}" in done.stdout
    assert (tmp_path / "p_drift.png").is_file()
    assert json.loads((tmp_path / "p_summary.json").read_text())["drift"]["level"] == "none"
