"""``skinattn evaluate`` end to end on the synthetic sample: outputs, JSON vs scikit-learn, report, errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _sklearn_reference import assert_metrics_equal_sklearn

from skinattn.cli import main
from skinattn.constants import HAM10000_CLASSES
from skinattn.data.schema import read_manifest, write_manifest
from skinattn.errors import DataError
from skinattn.evaluation import EvaluationSettings, evaluate
from skinattn.evaluation.tables import AVG_ROW, WEIGHTED_AVG_ROW

OUTPUTS = (
    "metrics.json", "table.csv", "table.md", "predictions.csv", "predictions_isic.csv",
    "confusion_matrix.png", "roc.png", "reliability.png", "report.html",
)  # fmt: skip
PER_CLASS = 2


@pytest.fixture(scope="module")
def sa_run(tmp_path_factory: pytest.TempPathFactory, sa_model_dir: Path, manifest_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("sa-eval")
    code = main(
        ["evaluate", "--model", str(sa_model_dir), "--manifest", str(manifest_dir), "--split", "test",
         "--out", str(out), "--bootstrap", "40", "--explain-per-class", str(PER_CLASS), "--quiet", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    return out


def _embedded_pngs(html_text: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def test_every_output_is_written_and_nothing_is_left_half_written(sa_run: Path):
    for name in OUTPUTS:
        assert (sa_run / name).is_file() and (sa_run / name).stat().st_size > 0, name
    assert not list(sa_run.rglob(".*.tmp")), "temporary files left behind"


def test_metrics_json_equals_sklearn_on_the_written_predictions(sa_run: Path):
    metrics = json.loads((sa_run / "metrics.json").read_text())
    predictions = pd.read_csv(sa_run / "predictions.csv", dtype={"image_id": str, "label": str})
    names = list(HAM10000_CLASSES)
    y = predictions["label"].map({n: i for i, n in enumerate(names)}).to_numpy()
    probs = predictions[[f"prob_{n}" for n in names]].to_numpy()
    assert_metrics_equal_sklearn(metrics, y, probs, names)
    assert metrics["run"]["split"] == "test" and metrics["run"]["images"] == len(predictions) == 21
    # a hand-made model and manifest: no training seed or split protocol to record, and none is guessed
    assert (metrics["run"]["training_seed"], metrics["run"]["split_protocol"]) == (None, None)
    assert len(set(predictions["prediction"])) > 1, "the briefly trained model should not predict one class only"
    intervals = metrics["confidence_intervals"]["intervals"]
    assert intervals["accuracy"]["low"] <= metrics["accuracy"] <= intervals["accuracy"]["high"]


def test_predictions_cover_the_test_split_and_the_isic_layout_matches(sa_run: Path, manifest_dir: Path):
    frame, _ = read_manifest(manifest_dir)
    test_rows = frame[frame["split"] == "test"]
    predictions = pd.read_csv(sa_run / "predictions.csv", dtype=str)
    assert list(predictions["image_id"]) == list(test_rows["image_id"])
    assert list(predictions["label"]) == list(test_rows["label"])
    assert list(predictions.columns) == ["image_id", "label", "prediction"] + [f"prob_{c}" for c in HAM10000_CLASSES]
    probs = predictions[[f"prob_{c}" for c in HAM10000_CLASSES]].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)

    isic = pd.read_csv(sa_run / "predictions_isic.csv", dtype={"image": str})
    assert list(isic.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]  # ISIC 2018 order
    assert list(isic["image"]) == list(predictions["image_id"])
    for code in ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"):
        np.testing.assert_allclose(isic[code.upper()], predictions[f"prob_{code}"].astype(float), rtol=0, atol=1e-12)


def test_paper_table_files_have_the_paper_rows_and_columns(sa_run: Path):
    table = pd.read_csv(sa_run / "table.csv")
    assert list(table.columns) == ["Dis.", "Precision", "AUC", "Recall", "Specificity", "F1", "#"]
    assert list(table["Dis."]) == [c.upper() for c in HAM10000_CLASSES] + [AVG_ROW, WEIGHTED_AVG_ROW]
    assert list(table["#"]) == [3] * 7 + [21, 21]
    markdown = (sa_run / "table.md").read_text().splitlines()
    # The headline line first, balanced accuracy and macro figures leading (issue 14), then the table.
    assert markdown[0].startswith("balanced accuracy **") and markdown[1] == ""
    assert markdown[0].index("macro precision") < markdown[0].index("weighted precision")
    assert markdown[2] == "| Dis. | Precision | AUC | Recall | Specificity | F1 | # |"
    assert [line.split("|")[1].strip() for line in markdown[4:13]] == list(table["Dis."])


def test_report_is_self_contained_with_figures_and_overlays(sa_run: Path):
    report = (sa_run / "report.html").read_text()
    assert not re.search(r'src="(?!data:)', report), "the report must not reference external files"
    embedded = _embedded_pngs(report)
    assert (sa_run / "confusion_matrix.png").read_bytes() in embedded
    assert (sa_run / "roc.png").read_bytes() in embedded
    overlays = sa_run / "overlays"
    for kind in ("input", "attention", "gradcam"):
        files = sorted(overlays.glob(f"*_{kind}.png"))
        assert len(files) == PER_CLASS * len(HAM10000_CLASSES), kind
        for path in files:
            assert path.read_bytes() in embedded, path.name
    assert "SA attention" in report and "Grad-CAM" in report
    assert "W. Avg" in report and "Headline metrics" in report


def test_baseline_report_shows_grad_cam_only(tmp_path: Path, baseline_model_dir: Path, manifest_dir: Path):
    metrics = evaluate(
        baseline_model_dir, manifest_dir, tmp_path,
        EvaluationSettings(n_bootstrap=0, explain_per_class=1, progress=False, device="cpu"),
    )  # fmt: skip
    assert "confidence_intervals" not in metrics
    assert not list((tmp_path / "overlays").glob("*_attention.png"))
    gradcams = list((tmp_path / "overlays").glob("*_gradcam.png"))
    assert len(gradcams) == len(HAM10000_CLASSES)
    report = (tmp_path / "report.html").read_text()
    assert "no soft attention" in report
    embedded = _embedded_pngs(report)
    assert all(path.read_bytes() in embedded for path in gradcams)


def _copy_manifest(manifest_dir: Path, tmp_path: Path, edit) -> Path:  # noqa: ANN001
    frame, info = read_manifest(manifest_dir)
    frame = edit(frame.copy())
    write_manifest(frame, info, tmp_path / "manifest")
    return tmp_path / "manifest"


def test_unreadable_image_names_the_row_and_file(tmp_path: Path, sa_model_dir: Path, manifest_dir: Path, capsys):
    frame, _ = read_manifest(manifest_dir)
    victim = frame.index[frame["split"] == "test"][4]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    def corrupt(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[victim, "image_path"] = str(broken)
        return f

    manifest = _copy_manifest(manifest_dir, tmp_path, corrupt)
    code = main(["evaluate", "--model", str(sa_model_dir), "--manifest", str(manifest), "--out", str(tmp_path / "out"),
                 "--bootstrap", "0", "--quiet", "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert f"row {victim + 2} (image_id {frame.loc[victim, 'image_id']})" in err
    assert str(broken) in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_manifest_without_splits_is_refused_unless_all_rows_are_asked_for(tmp_path: Path, sa_model_dir: Path, manifest_dir: Path):
    manifest = _copy_manifest(manifest_dir, tmp_path, lambda f: f.drop(columns=["split"]))
    settings = EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    with pytest.raises(DataError, match="no 'split' column"):
        evaluate(sa_model_dir, manifest, tmp_path / "out", settings)
    all_rows = EvaluationSettings(split=None, n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    assert evaluate(sa_model_dir, manifest, tmp_path / "out", all_rows)["num_samples"] == 42


def test_labels_the_model_does_not_know_are_refused(tmp_path: Path, manifest_dir: Path):
    from skinattn.models import create_model, save_model

    binary = save_model(create_model("resnet10t", num_classes=2, class_names=["nv", "mel"], img_size=64), tmp_path / "m")
    with pytest.raises(DataError, match=r"label\(s\) \['akiec', 'bcc', 'bkl', 'df', 'vasc'\] are not classes of this model"):
        evaluate(binary, manifest_dir, tmp_path / "out", EvaluationSettings(n_bootstrap=0, progress=False, device="cpu"))


def test_binary_model_gets_the_table_4_layout(tmp_path: Path, manifest_dir: Path):
    from skinattn.models import create_model, save_model

    manifest = _copy_manifest(manifest_dir, tmp_path, lambda f: f[f["label"].isin(["nv", "mel"])])
    model = save_model(create_model("resnet10t", num_classes=2, class_names=["nv", "mel"], img_size=64), tmp_path / "m")
    metrics = evaluate(model, manifest, tmp_path / "out", EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu"))
    assert metrics["binary"]["positive_class"] == "mel"
    table = pd.read_csv(tmp_path / "out" / "table_binary.csv")
    assert list(table.columns) == ["Networks", "AUC", "Accuracy", "Sensitivity", "Specificity"]
    assert table.loc[0, "Networks"] == "resnet10t + SA"
    assert table.loc[0, "Sensitivity"] == pytest.approx(metrics["binary"]["sensitivity"])
    isic = pd.read_csv(tmp_path / "out" / "predictions_isic.csv")
    assert list(isic.columns) == ["image", "NV", "MEL"]  # not the HAM10000 class set: the model's order
