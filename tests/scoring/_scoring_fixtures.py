"""Builders of synthetic archives for the scoring tests (no fixtures: conftest.py has those).

Archives follow the ``isic image download`` layout: ``<isic_id>.jpg`` (real JPEGs, each different, so
predictions differ between images), ``metadata.csv`` with new-schema diagnosis columns,
``attribution.txt`` and ``licenses/``.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests: the project's .venv under `make test`.
PYTHON = sys.executable

# (diagnosis_1, diagnosis_3, HAM10000 class) as the ISIC Archive writes them; one per class.
DIAGNOSES: tuple[tuple[str, str, str], ...] = (
    ("Malignant", "Melanoma Invasive", "mel"),
    ("Benign", "Nevus", "nv"),
    ("Malignant", "Basal cell carcinoma", "bcc"),
    ("Benign", "Seborrheic keratosis", "bkl"),
    ("Benign", "Dermatofibroma", "df"),
    ("Benign", "Angioma", "vasc"),
    ("Indeterminate", "Solar or actinic keratosis", "akiec"),
)


def jpeg_bytes(seed: int, size: int = 40) -> bytes:
    """A real JPEG of random blotches: different seeds give visibly different images."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def isic_id(number: int) -> str:
    return f"ISIC_{9_100_000 + number:07d}"


def make_archive(folder: Path, count: int, labelled: bool = True, size: int = 40) -> dict[str, str]:
    """Write an isic-download folder of ``count`` images; return {isic_id: class} ("" when unlabelled)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    rows = []
    for n in range(count):
        image_id = isic_id(n)
        (folder / f"{image_id}.jpg").write_bytes(jpeg_bytes(n, size))
        d1, d3, label = DIAGNOSES[n % len(DIAGNOSES)]
        labels[image_id] = label if labelled else ""
        row = {"isic_id": image_id, "attribution": "Anonymous", "copyright_license": "CC-BY"}
        if labelled:
            row |= {"diagnosis_1": d1, "diagnosis_2": "", "diagnosis_3": d3}
        rows.append(row)
    with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "attribution.txt").write_text("Anonymous\n", encoding="utf-8")
    (folder / "licenses").mkdir(exist_ok=True)
    (folder / "licenses" / "CC-BY.txt").write_text("license text\n", encoding="utf-8")
    return labels


def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Pack ``folder`` into ``archive`` (members relative to the folder), plus ``extra`` raw members."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def upload_folder(folder: Path, endpoint: str, prefix: str = "download") -> str:
    """Upload ``folder`` to a fresh bucket; return the ``s3://bucket/prefix`` URI."""
    bucket = f"scoring-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env
