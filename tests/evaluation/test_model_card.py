"""The model card (issue 14, item 4) and the subgroup metrics it reports: written by ``evaluate`` beside the
report, with subgroups from the manifest's sex / age / site columns where they exist, and rendered as Markdown."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from skinattn.data.schema import ManifestInfo, read_manifest, write_manifest
from skinattn.errors import DataError
from skinattn.evaluation import EvaluationSettings, evaluate
from skinattn import model_card
from skinattn.evaluation.subgroups import SMALL_N, age_band, subgroup_metrics
from skinattn.model_card import NOT_FOR_DIAGNOSIS, build_card, render_markdown
from skinattn.models import read_card

SETTINGS = EvaluationSettings(split=None, n_bootstrap=20, explain_per_class=0, progress=False, device="cpu")
MALE, FEMALE = 32, 6  # rows; the rest have no sex recorded


@pytest.fixture(scope="module")
def metadata_manifest(tmp_path_factory: pytest.TempPathFactory, manifest_dir: Path) -> Path:
    """The evaluation manifest (42 images) with HAM10000's metadata columns: 32 male, 6 female, 4 blank; ages
    in every band and blank; sites cycling over four values."""
    frame, _ = read_manifest(manifest_dir)
    frame = frame.drop(columns=["split"])
    n = len(frame)
    frame["sex"] = ["male"] * MALE + ["female"] * FEMALE + [""] * (n - MALE - FEMALE)
    frame["age"] = [["25.0", "45.0", "65.0", "85.0", ""][i % 5] for i in range(n)]
    frame["localization"] = [["back", "face", "lower extremity", "acral"][i % 4] for i in range(n)]
    out = tmp_path_factory.mktemp("metadata-manifest")
    write_manifest(frame, ManifestInfo(classes=sorted(set(frame["label"])), format="ham10000"), out)
    return out


@pytest.fixture(scope="module")
def metadata_run(tmp_path_factory: pytest.TempPathFactory, sa_model_dir: Path, metadata_manifest: Path) -> Path:
    out = tmp_path_factory.mktemp("card-eval")
    evaluate(sa_model_dir, metadata_manifest, out, SETTINGS)
    return out


def _expected_groups(run: Path, manifest: Path, column: str, keys=lambda v: v or "unknown") -> dict[str, tuple[int, float]]:
    """n and accuracy per group, recomputed with pandas from predictions.csv and the manifest."""
    predictions = pd.read_csv(run / "predictions.csv", dtype=str, keep_default_na=False)
    frame, _ = read_manifest(manifest)
    joined = predictions.merge(frame[["image_id", column]], on="image_id")
    joined["key"] = joined[column].map(keys)
    return {key: (len(rows), float((rows["label"] == rows["prediction"]).mean())) for key, rows in joined.groupby("key")}


def test_subgroup_metrics_match_a_recomputation_from_predictions_and_manifest(metadata_run: Path, metadata_manifest: Path):
    section = json.loads((metadata_run / "metrics.json").read_text())["subgroups"]
    assert section["available"] is True and set(section["groups"]) == {"sex", "age", "site"}
    for kind, column, keys in (("sex", "sex", lambda v: v or "unknown"), ("age", "age", age_band),
                               ("site", "localization", lambda v: v)):  # fmt: skip
        rows = {r["group"]: r for r in section["groups"][kind]["rows"]}
        expected = _expected_groups(metadata_run, metadata_manifest, column, keys)
        assert {g: (r["n"], pytest.approx(r["accuracy"])) for g, r in rows.items()} == expected, kind
    sex = {r["group"]: r for r in section["groups"]["sex"]["rows"]}
    assert (sex["male"]["n"], sex["male"]["small"]) == (MALE, False)
    assert (sex["female"]["n"], sex["female"]["small"]) == (FEMALE, True)
    assert [r["group"] for r in section["groups"]["age"]["rows"]] == ["<30", "30-49", "50-69", ">=70", "unknown"]
    assert any("fewer than 30 images" in note and "female" in note for note in section["notes"])


def test_the_card_is_written_beside_the_report_and_shown_in_it(metadata_run: Path, sa_model_dir: Path):
    markdown = (metadata_run / "MODEL_CARD.md").read_text()
    card = json.loads((metadata_run / "model_card.json").read_text())
    metrics = json.loads((metadata_run / "metrics.json").read_text())
    assert card == json.loads(json.dumps(build_card(read_card(sa_model_dir), metrics, weights_sha256=card["model_details"]["weights_sha256"])))
    assert markdown == render_markdown(card)
    assert NOT_FOR_DIAGNOSIS in markdown
    female = next(line for line in markdown.splitlines() if line.startswith("| sex | female |"))
    male = next(line for line in markdown.splitlines() if line.startswith("| sex | male |"))
    assert "n < 30: unreliable" in female and "unreliable" not in male
    # Internal metrics with their bootstrap CI, as metrics.json has them.
    low = metrics["confidence_intervals"]["intervals"]["balanced_accuracy"]["low"]
    assert f"| balanced accuracy | {metrics['balanced_accuracy']:.3f} | {low:.3f} – " in markdown
    report = (metadata_run / "report.html").read_text()
    assert "<h2>Subgroup metrics</h2>" in report and "<h2>Model card</h2>" in report
    pngs = [base64.b64decode(d) for d in re.findall(r'alt="balanced accuracy by subgroup" src="data:image/png;base64,([^"]+)"', report)]
    assert len(pngs) == 1 and pngs[0] == (metadata_run / "subgroups.png").read_bytes()


def test_without_metadata_the_card_says_no_subgroups_are_available(tmp_path: Path, sa_model_dir: Path, manifest_dir: Path):
    metrics = evaluate(sa_model_dir, manifest_dir, tmp_path, SETTINGS)
    assert metrics["subgroups"]["available"] is False and metrics["subgroups"]["groups"] == {}
    markdown = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## Subgroup metrics\n\nNone available:" in markdown and "has none of the metadata columns" in markdown
    assert "Performance by sex, age and anatomical site was not measured" in markdown
    assert not (tmp_path / "subgroups.png").exists()
    assert "None available" in (tmp_path / "report.html").read_text()


def test_age_bands_and_a_repeated_image_id_is_an_error_naming_the_manifest():
    assert SMALL_N == model_card.SMALL_N  # the card flags what the evaluation flags
    assert [age_band(v) for v in ["0", "29.9", "30", "49", "50.0", "69", "70", "95", "", "n/a", "-5"]] == [
        "<30", "<30", "30-49", "30-49", "50-69", "50-69", ">=70", ">=70", "unknown", "unknown", "unknown"]
    predictions = pd.DataFrame({"image_id": ["a", "b"], "label": ["x", "y"], "prediction": ["x", "x"]})
    rows = pd.DataFrame({"image_id": ["a", "b", "b"], "sex": ["male", "female", "female"]})
    with pytest.raises(DataError, match="meta.csv: image_id b appears more than once"):
        subgroup_metrics(predictions, rows, source="meta.csv")
    with pytest.raises(DataError, match="meta.csv: predicted image b is not in the manifest"):
        subgroup_metrics(predictions, rows.iloc[:1], source="meta.csv")


MODEL_JSON = {
    "config": {"arch": "resnet10t", "soft_attention": True, "input_size": 32, "class_names": ["mel", "nv"]},
    "parameters": 4_900_000,
    "pretrained": {"source": "s3://models/resnet10t.safetensors", "sha256": "ab" * 32, "format": "safetensors"},
    "calibration": {"temperature": 1.7, "fitted_on": "validation", "n": 60},
    "metadata": {
        "training": {"epochs_run": 12, "best_epoch": 9, "monitor": "val_loss", "stop_reason": "reached train.epochs=12"},
        "config": {"optim": {"lr": 0.01, "eps": 0.1}, "train": {"batch_size": 16, "seed": 3}, "data": {"balance": "index"}},
        "data": {"format": "ham10000", "source": "s3://data/ham10000", "manifest": "/runs/prepared", "images": 100,
                 "lesions": 80, "split": {"protocol": "grouped"},
                 "counts": {"train": {"mel": 30, "nv": 40, "total": 70}, "val": {"mel": 5, "nv": 10, "total": 15},
                            "test": {"mel": 5, "nv": 10, "total": 15}}},
    },
}  # fmt: skip


def test_rendered_card_has_every_section_with_training_data_licence_external_and_calibration():
    metrics = {
        "num_samples": 15, "accuracy": 0.8, "balanced_accuracy": 0.7, "per_class": {"mel": {"support": 5}, "nv": {"support": 10}},
        "macro_avg": {"auc": 0.9, "precision": 0.6, "f1": 0.65}, "weighted_avg": {"auc": 0.91, "precision": 0.8},
        "confidence_intervals": {"confidence": 0.9, "method": "stratified bootstrap, percentile", "n_resamples": 50,
                                 "seed": 0, "intervals": {"balanced_accuracy": {"low": 0.55, "high": 0.85}}},
        "calibration": {"temperature": 1.7, "ece": 0.04, "ece_uncalibrated": 0.09, "n_bins": 15},
        "external": {"source": "s3://data/isic-2020", "images": 40, "accuracy": 0.6, "balanced_accuracy": float("nan"),
                     "excluded": {"message": "excluded: 3 rows with labels sk not among the model's classes"}},
        "subgroups": {"available": False, "groups": {}, "notes": ["manifest has none of the metadata columns"]},
    }  # fmt: skip
    card = build_card(MODEL_JSON, metrics, weights_sha256="cd" * 32)
    markdown = render_markdown(card)
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings == ["## Model details", "## Intended use", "## Out of scope", "## Training data", "## Evaluation",
                        "## Subgroup metrics", "## Calibration", "## Known limitations"]  # fmt: skip
    assert "| pretrained sha256 | " + "ab" * 32 + " |" in markdown and "| parameters | 4,900,000 |" in markdown
    assert "- Licence: CC BY-NC 4.0" in markdown and "Tschandl" in markdown and "doi:10.1038/sdata.2018.161" in markdown
    assert "| test | 5 | 10 | 15 |" in markdown  # counts per class per split
    assert "Split protocol: grouped: grouped by lesion" in markdown
    assert "| balanced accuracy | 0.700 | 0.550 – 0.850 |" in markdown and "| metric | value | 90% CI |" in markdown
    assert "### Metrics on the external test set (s3://data/isic-2020, 40 images)" in markdown
    external = {row["metric"]: row["value"] for row in card["evaluation"]["external"]["rows"]}
    assert "excluded: 3 rows with labels sk" in markdown and external == {"balanced_accuracy": None, "accuracy": 0.6}
    assert "| ece_uncalibrated | 0.090 |" in markdown and "| temperature | 1.700 |" in markdown
    assert "uncalibrated softmax" not in markdown  # the model applies a fitted temperature
    assert "mostly of fair-skinned patients" in markdown
    json.dumps(card, allow_nan=False)  # strict JSON: NaN became null


def test_a_model_without_evaluation_or_data_facts_still_gets_a_card():
    card = build_card({"config": MODEL_JSON["config"], "metadata": {"data": {"format": "somewhere-else"}}}, {"accuracy": 0.5})
    markdown = render_markdown(card)
    assert card["evaluation"]["evaluated"] is False and card["evaluation"]["recorded_metrics"] == {"accuracy": 0.5}
    assert "**Not evaluated: no evaluation metrics" in markdown and "| accuracy | 0.500 |" in markdown
    assert card["training_data"]["licence"] == "not recorded, check the source"
    assert "No temperature fitted" in markdown and "uncalibrated softmax outputs" in markdown
    assert "None available: not evaluated." in markdown
