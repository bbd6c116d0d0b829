"""What a model card says about its data: the collection, its format, how it was split, and counts.

:func:`data_facts` reads a prepared manifest (``manifest.csv`` + ``manifest.json``) and returns plain JSON:
where the collection came from, its format (which decides the licence the card states), the split protocol
(``grouped`` by lesion, or the authors' ``paper`` protocol), images per class in each split, which
demographic metadata columns exist (for subgroup metrics), and for ISIC Archive downloads the per-image
licences counted from ``copyright_license``. Training stores it in the model card's metadata
(``metadata.data``), so the card needs no access to the data set later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.data.schema import SPLIT_COLUMN, SPLITS, read_manifest

# Metadata columns of the readers' manifests that describe the patient or the lesion's site, by subgroup
# kind; the first column present is used. HAM10000: sex, age, localization. ISIC Archive: sex, age_approx,
# anatom_site_general (older exports) or anatom_site_1 (newer ones).
SUBGROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "sex": ("sex",),
    "age": ("age", "age_approx"),
    "site": ("localization", "anatom_site_general", "anatom_site_1"),
}
LICENCE_COLUMN = "copyright_license"


def subgroup_columns(columns: list[str] | pd.Index) -> dict[str, str]:
    """``{kind: column}`` for each subgroup kind (sex, age, site) whose metadata column the table has."""
    present = set(columns)
    found = {}
    for kind, candidates in SUBGROUP_COLUMNS.items():
        column = next((c for c in candidates if c in present), None)
        if column is not None:
            found[kind] = column
    return found


def data_facts(prepared: str | Path) -> dict[str, Any]:
    """The card's training-data facts of the prepared manifest at ``prepared`` (folder or CSV)."""
    frame, info = read_manifest(prepared)
    prepare = (info.extra or {}).get("prepare") or {}
    facts: dict[str, Any] = {
        "manifest": str(Path(prepared).resolve()),
        "format": info.format,
        "source": info.source,
        "classes": list(info.classes),
        "images": int(len(frame)),
        "lesions": int(frame["lesion_id"].nunique()),
        "split": prepare.get("split") or {},
        "counts": _counts(frame, list(info.classes)),
        "metadata_columns": subgroup_columns(frame.columns),
    }
    if LICENCE_COLUMN in frame.columns:
        licences = frame[LICENCE_COLUMN].replace("", "not stated").value_counts()
        facts["image_licences"] = {str(k): int(v) for k, v in licences.items()}
    return facts


def _counts(frame: pd.DataFrame, classes: list[str]) -> dict[str, dict[str, int]]:
    """Images per class in each split (``all`` when the manifest was never split)."""
    groups = SPLITS if SPLIT_COLUMN in frame.columns else ("all",)
    counts = {}
    for split in groups:
        labels = frame["label"] if split == "all" else frame.loc[frame[SPLIT_COLUMN] == split, "label"]
        per_class = labels.value_counts()
        counts[split] = {c: int(per_class.get(c, 0)) for c in classes} | {"total": int(len(labels))}
    return counts
