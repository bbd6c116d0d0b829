"""The real ``ham10000-224`` images packed as an ``isic image download`` zip: every image scored once."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from skinattn.scoring import ScoreSettings, score_source
from skinattn.scoring.tables import read_table

# HAM10000 class → the ISIC Archive's (old-schema) diagnosis term, as an isic-cli download writes it.
ISIC_TERMS = {
    "mel": "melanoma", "nv": "nevus", "bcc": "basal cell carcinoma", "akiec": "actinic keratosis",
    "bkl": "pigmented benign keratosis", "df": "dermatofibroma", "vasc": "vascular lesion",
}  # fmt: skip


@pytest.mark.real_data
@pytest.mark.slow
def test_real_ham10000_zip_scored_with_labels_none_lost(real_data_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    source = real_data_dir / "ham10000-224"
    metadata = pd.read_csv(source / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["isic_id", "attribution", "copyright_license", "benign_malignant", "diagnosis"])
    for image_id, dx in zip(metadata["image_id"], metadata["dx"]):
        writer.writerow([image_id, "ViDIR Group", "CC-BY-NC", "malignant" if dx in ("mel", "bcc") else "benign", ISIC_TERMS[dx]])
    archive = tmp_path / "ham10000-isic.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:  # JPEGs do not compress
        for image_id in metadata["image_id"]:
            zf.write(source / "images" / f"{image_id}.jpg", f"{image_id}.jpg")
        zf.writestr("metadata.csv", table.getvalue())
        zf.writestr("attribution.txt", "ViDIR Group, Medical University of Vienna\n")
        zf.writestr("../outside.jpg", (source / "images" / f"{metadata['image_id'][0]}.jpg").read_bytes())
        zf.writestr("ISIC_CORRUPT.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")

    settings = ScoreSettings(batch_size=64, workers=2, device="cpu", chunk_size=1024, n_bootstrap=0, progress=False)
    result = score_source(str(archive), tmp_path / "predictions.parquet", str(model_dir), settings)

    predictions = read_table(result.predictions)
    assert len(predictions) == len(metadata) and predictions["image_id"].is_unique
    assert dict(zip(predictions["image_id"], predictions["label"])) == dict(zip(metadata["image_id"], metadata["dx"]))
    errors = read_table(result.errors)
    assert sorted(errors["file"]) == ["../outside.jpg", "ISIC_CORRUPT.jpg"]
    assert len(pd.read_csv(result.isic)) == len(metadata)
    metrics = json.loads((result.evaluation / "metrics.json").read_text())
    assert metrics["num_samples"] == len(metadata)
    assert metrics["per_class"]["nv"]["support"] == int((metadata["dx"] == "nv").sum())
