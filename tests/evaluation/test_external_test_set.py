"""Issue 14, item 2: an external test set evaluated beside the internal split, shown side by side.

The external set is synthetic lesions in the ISIC 2017 layout (another format than the internal manifest),
zipped, with ISIC 2017's ``sk`` class that the HAM10000 model does not have: those rows must be counted and
named, never scored and never dropped silently.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _external_collection import make_isic2017_external
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

from skinattn.cli import main
from skinattn.constants import HAM10000_CLASSES
from skinattn.errors import DataError
from skinattn.evaluation import EvaluationSettings, compute_metrics, evaluate
from skinattn.evaluation.external import ExternalTestSet

BOOTSTRAP = 40


@pytest.fixture(scope="module")
def external_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("external")
    folder, truth = make_isic2017_external(root)
    return Path(shutil.make_archive(str(root / "isic2017-test"), "zip", folder)), truth


@pytest.fixture(scope="module")
def run(tmp_path_factory, sa_model_dir: Path, manifest_dir: Path, external_zip) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("external-eval")
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["evaluate", "--model", str(sa_model_dir), "--manifest", str(manifest_dir), "--out", str(out),
             "--external-test", str(external_zip[0]), "--external-format", "isic2017", "--bootstrap", str(BOOTSTRAP),
             "--explain-per-class", "0", "--quiet", "--device", "cpu"]
        )  # fmt: skip
    assert code == 0
    return out, printed.getvalue()


def test_unknown_labels_are_counted_and_named_not_scored(run, external_zip):
    out, printed = run
    truth = external_zip[1]
    n_sk = sum(label == "sk" for label in truth.values())
    metrics = json.loads((out / "metrics.json").read_text())
    external = metrics["external"]
    assert n_sk > 0 and external["images"] == len(truth) - n_sk
    assert external["excluded"]["labels"] == {"sk": n_sk} and external["excluded"]["rows"] == n_sk
    message = f"excluded: {n_sk} rows with labels sk not among the model's classes"
    assert external["excluded"]["message"] == message and message in external["notes"]
    assert (external["source"], external["format"]) == (str(external_zip[0]), "isic2017")
    predictions = pd.read_csv(out / "external" / "predictions.csv", dtype=str)
    assert sorted(predictions["image_id"]) == sorted(i for i, label in truth.items() if label != "sk")
    assert message in printed and "external test set" in printed


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # the reference's, on absent classes
def test_external_section_has_the_internal_shape_and_equals_sklearn(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    external = metrics["external"]
    # the shape of the internal metrics (skinattn.evaluation.metrics), plus where the set came from
    shape = set(compute_metrics(np.array([0, 1, 2, 0]), np.eye(3)[[0, 1, 2, 1]], list("abc"), n_bootstrap=2, progress=False))
    assert shape <= set(metrics) and shape <= set(external)
    for block in ("per_class", "macro_avg", "weighted_avg"):
        assert {k: set(v) if isinstance(v, dict) else None for k, v in external[block].items()} == {
            k: set(v) if isinstance(v, dict) else None for k, v in metrics[block].items()}
    predictions = pd.read_csv(out / "external" / "predictions.csv", dtype={"image_id": str, "label": str})
    names = list(HAM10000_CLASSES)
    y = predictions["label"].map({n: i for i, n in enumerate(names)}).to_numpy()
    pred = predictions[[f"prob_{n}" for n in names]].to_numpy().argmax(axis=1)
    assert external["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert external["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
    assert external["confusion_matrix"] == confusion_matrix(y, pred, labels=range(len(names))).tolist()
    for k in np.unique(y):
        assert external["per_class"][names[k]]["recall"] == pytest.approx(recall_score(y == k, pred == k), abs=1e-12)
    assert external["per_class"]["akiec"]["recall"] is None  # absent from the external set: undefined
    ci = external["confidence_intervals"]
    assert ci["n_resamples"] == BOOTSTRAP and ci["intervals"]["accuracy"]["low"] <= external["accuracy"]


def test_shift_is_external_minus_internal(run):
    out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    shift, external = metrics["shift"], metrics["external"]
    for name in HAM10000_CLASSES:
        inside, outside = metrics["per_class"][name]["recall"], external["per_class"][name]["recall"]
        if outside is None:
            assert shift["per_class_recall"][name] is None
        else:
            assert shift["per_class_recall"][name] == pytest.approx(outside - inside, abs=1e-12)
    for name, key in (("balanced_accuracy", ("balanced_accuracy",)), ("macro_auc", ("macro_avg", "auc"))):
        inside, outside = metrics, external
        for part in key:
            inside, outside = inside[part], outside[part]
        assert shift["headline"][name] == pytest.approx(outside - inside, abs=1e-12)
    assert metrics["run"]["external_test"] == external["source"]


def test_report_shows_internal_and_external_side_by_side(run):
    out, _ = run
    text = (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    start = text.index("External test set: internal vs external")
    section = text[start:text.index("<h2>", start + 10)]
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", section).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == [
        "metric", "internal", "internal 95% CI", "external", "external 95% CI", "shift"]
    ba_row = re.search(r"<tr><td>balanced accuracy</td>(.*?)</tr>", section).group(1)
    cells = re.findall(r"<td>(.*?)</td>", ba_row)
    internal_ci = metrics["confidence_intervals"]["intervals"]["balanced_accuracy"]
    external_ci = metrics["external"]["confidence_intervals"]["intervals"]["balanced_accuracy"]
    assert cells == [
        f"{metrics['balanced_accuracy']:.3f}", f"{internal_ci['low']:.3f} – {internal_ci['high']:.3f}",
        f"{metrics['external']['balanced_accuracy']:.3f}", f"{external_ci['low']:.3f} – {external_ci['high']:.3f}",
        f"{metrics['shift']['headline']['balanced_accuracy']:.3f}",
    ]  # fmt: skip
    assert html.escape(metrics["external"]["excluded"]["message"]) in section
    assert "<td>MEL</td>" in section and "<td>SK</td>" not in section  # per-class recall: the model's classes
    figures = [base64.b64decode(d) for d in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', section)]
    assert (out / "recall_shift.png").read_bytes() in figures
    assert "External test set" in (out / "table.md").read_text()


def test_no_row_the_model_knows_is_a_clear_error(tmp_path: Path, manifest_dir: Path, external_zip):
    from skinattn.models import create_model, save_model

    model = save_model(create_model("resnet10t", num_classes=2, class_names=["bcc", "df"], img_size=64), tmp_path / "m")
    manifest = tmp_path / "internal"
    frame = pd.read_csv(manifest_dir / "manifest.csv", dtype=str)
    from skinattn.data.schema import ManifestInfo, write_manifest

    write_manifest(frame[frame["label"].isin(["bcc", "df"])], ManifestInfo(classes=["bcc", "df"]), manifest)
    settings = EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    with pytest.raises(DataError, match=r"no row has a label among the model's classes \['bcc', 'df'\]; found mel \(\d+\), "
                       r"nv \(\d+\), sk \(\d+\)"):  # fmt: skip
        evaluate(model, manifest, tmp_path / "out", settings, external=ExternalTestSet(str(external_zip[0]), "isic2017"))


def test_a_broken_external_set_names_the_problem_and_the_report(tmp_path: Path, sa_model_dir: Path, manifest_dir: Path):
    folder, truth = make_isic2017_external(tmp_path, per_class=2)
    missing = next(iter(truth))
    next(folder.rglob(f"{missing}.jpg")).unlink()
    settings = EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    with pytest.raises(DataError, match=rf"external test set {re.escape(str(folder))} \(isic2017\) failed validation: "
                       rf".*{missing}.*ingest_report.json"):  # fmt: skip
        evaluate(sa_model_dir, manifest_dir, tmp_path / "out", settings, external=ExternalTestSet(str(folder), "isic2017"))


def test_external_set_read_from_s3(s3_endpoint: str, s3_env: dict, tmp_path: Path, sa_model_dir: Path,
                                   manifest_dir: Path):  # fmt: skip
    """The external set may live in a bucket (moto's S3 server here, reached through the AWS_* variables)."""
    import boto3

    folder, truth = make_isic2017_external(tmp_path, per_class=2)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="external-sets")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), "external-sets", f"isic2017/{path.relative_to(folder).as_posix()}")
    settings = EvaluationSettings(n_bootstrap=0, explain_per_class=0, progress=False, device="cpu")
    metrics = evaluate(sa_model_dir, manifest_dir, tmp_path / "out", settings,
                       external=ExternalTestSet("s3://external-sets/isic2017", "isic2017"))  # fmt: skip
    n_sk = sum(label == "sk" for label in truth.values())
    assert metrics["external"]["images"] == len(truth) - n_sk and metrics["external"]["excluded"]["labels"] == {"sk": n_sk}
    manifest = pd.read_csv(tmp_path / "out" / "external" / "manifest.csv", dtype=str)
    assert manifest["image_path"].str.startswith("s3://external-sets/isic2017/").all()


def test_isic_archive_rows_kept_out_by_the_reader_or_unlabelled_are_counted(tmp_path: Path):
    """The default format: an ISIC Archive download. A diagnosis that maps onto no HAM10000 class is kept
    out by the reader, a row without diagnosis is unlabelled: both are counted, neither is scored."""
    from PIL import Image

    from skinattn.evaluation.external import NO_LABEL, load_external

    diagnoses = ["melanoma", "nevus", "nevus", "squamous cell carcinoma, invasive", ""]
    download = tmp_path / "isic-download"
    download.mkdir()
    lines = ["isic_id,attribution,copyright_license,diagnosis"]
    for index, diagnosis in enumerate(diagnoses):
        image_id = f"ISIC_{7000000 + index:07d}"
        Image.new("RGB", (32, 32), (40 * index, 90, 120)).save(download / f"{image_id}.jpg")
        lines.append(f'{image_id},Test,CC-0,"{diagnosis}"')
    (download / "metadata.csv").write_text("\n".join(lines) + "\n")

    rows = load_external(ExternalTestSet(str(download)), list(HAM10000_CLASSES), tmp_path / "external")
    assert sorted(rows.rows["label"]) == ["mel", "nv", "nv"]
    assert rows.unknown_labels == {NO_LABEL: 1}
    assert rows.summary()["message"] == "excluded: 1 rows without a label"
    [(reason, count)] = rows.reader_excluded.items()
    assert count == 1 and "squamous cell carcinoma, invasive" in reason
