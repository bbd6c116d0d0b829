"""Builders for the batch-scoring pipeline tests: a tiny isic-download archive and a registered model.

The archive follows ``isic image download``: ``<isic_id>.jpg`` (real JPEGs that differ, so predictions
differ), ``metadata.csv`` with new-schema diagnosis columns, ``attribution.txt``, ``licenses/``; plus one
corrupt JPEG that scoring must list in the errors file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skinattn.models import create_model, save_model
from skinattn.registry import Registry

# (diagnosis_1, diagnosis_3) as the ISIC Archive writes them, and the HAM10000 class they map onto.
DIAGNOSES = (
    ("Malignant", "Melanoma Invasive", "mel"),
    ("Benign", "Nevus", "nv"),
    ("Malignant", "Basal cell carcinoma", "bcc"),
    ("Benign", "Seborrheic keratosis", "bkl"),
    ("Benign", "Dermatofibroma", "df"),
    ("Benign", "Angioma", "vasc"),
    ("Indeterminate", "Solar or actinic keratosis", "akiec"),
)
CORRUPT_ID = "ISIC_9999999"


def _jpeg(seed: int, size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    blotches = Image.fromarray(rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    blotches.resize((size, size), Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_isic_download(folder: Path, count: int) -> dict[str, str]:
    """``count`` labelled images + one corrupt JPEG; returns {isic_id: class} of the good images."""
    folder.mkdir(parents=True)
    labels, rows = {}, []
    for n in range(count):
        image_id = f"ISIC_{9_200_000 + n:07d}"
        (folder / f"{image_id}.jpg").write_bytes(_jpeg(n))
        d1, d3, label = DIAGNOSES[n % len(DIAGNOSES)]
        labels[image_id] = label
        rows.append({"isic_id": image_id, "attribution": "Anonymous", "copyright_license": "CC-BY",
                     "diagnosis_1": d1, "diagnosis_2": "", "diagnosis_3": d3})  # fmt: skip
    (folder / f"{CORRUPT_ID}.jpg").write_bytes(_jpeg(999)[:60])  # a JPEG header and nothing else
    with (folder / "metadata.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "attribution.txt").write_text("Anonymous\n", encoding="utf-8")
    (folder / "licenses").mkdir()
    (folder / "licenses" / "CC-BY.txt").write_text("license text\n", encoding="utf-8")
    return labels


def make_registry(root: Path, scratch: Path) -> Registry:
    """A registry whose production version v1 is resnet10t + Soft Attention at 32 px (random weights)."""
    torch.manual_seed(0)
    model_dir = save_model(create_model("resnet10t", img_size=32), scratch / "model")
    registry = Registry(str(root))
    version = registry.register(model_dir, {"balanced_accuracy": 0.5})
    registry.promote(version.version, "balanced_accuracy", force=True)
    return registry
