"""A synthetic collection in the ``isic image download`` layout, shared by the scoring and pipeline tests.

Importable from every test folder: pytest puts ``tests/`` (the folder of the root conftest) on sys.path.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

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
