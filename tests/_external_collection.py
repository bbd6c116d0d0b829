"""An external test set for the tests of issue 14: synthetic lesions in the ISIC 2017 Part 3 layout.

A different format from the HAM10000 layout the models train on, and with a class a HAM10000 model does not
have: ISIC 2017's ``sk`` (seborrheic keratosis, drawn with the synthetic ``bkl`` look), next to ``mel`` and
``nv``. Another seed than the training data, so the images differ.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pandas as pd

from skinattn.data.synthetic import make_sample_dataset

GROUND_TRUTH = "ISIC-2017_Test_v2_Part3_GroundTruth.csv"
IMAGE_FOLDER = "ISIC-2017_Test_v2_Data"
# synthetic HAM10000 look → ISIC 2017 class
LOOKS = {"mel": "mel", "nv": "nv", "bkl": "sk"}


def make_isic2017_external(root: Path, per_class: int = 4, size: int = 32, seed: int = 11) -> tuple[Path, dict[str, str]]:
    """Write the collection under ``root / "collection"``; return its folder and ``{image_id: label}``."""
    source = root / "synthetic"
    metadata = pd.read_csv(make_sample_dataset(source, per_class=per_class, size=size, seed=seed), dtype=str)
    folder = root / "collection"
    (folder / IMAGE_FOLDER).mkdir(parents=True)
    truth = {}
    for image_id, dx in zip(metadata["image_id"], metadata["dx"]):
        if dx in LOOKS:
            truth[image_id] = LOOKS[dx]
            shutil.copyfile(source / f"{image_id}.jpg", folder / IMAGE_FOLDER / f"{image_id}.jpg")
    with (folder / GROUND_TRUTH).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image_id", "melanoma", "seborrheic_keratosis"])
        for image_id, label in truth.items():
            writer.writerow([image_id, "1.0" if label == "mel" else "0.0", "1.0" if label == "sk" else "0.0"])
    return folder, truth
