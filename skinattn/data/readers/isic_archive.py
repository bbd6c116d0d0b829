"""ISIC Archive downloads, as written by ``isic image download OUTDIR`` (the isic-cli package).

Layout: ``<isic_id>.jpg`` files, ``metadata.csv`` (isic_id, attribution, copyright_license, then
whichever clinical fields the download has), ``attribution.txt`` and ``licenses/*.txt``.

Diagnoses come in two schemas, both accepted:

- new: ``diagnosis_1`` .. ``diagnosis_5``, a hierarchy from Benign/Indeterminate/Malignant down to the
  specific diagnosis; the most specific level that maps onto a HAM10000 class decides;
- old: ``diagnosis`` (e.g. "nevus", "pigmented benign keratosis") beside ``benign_malignant``.

Rows whose diagnosis does not map onto the 7 HAM10000 classes (e.g. invasive squamous cell carcinoma,
or only ``benign_malignant``) are kept out of the manifest and counted in the report; with
``keep_unmapped`` they stay in, unlabelled (for scoring). Rows with no diagnosis at all are unlabelled:
an archive downloaded for scoring has no labels.
"""

from __future__ import annotations

import re

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.readers.base import WHERE, Collection, Exclusion, find_table, read_table, require_columns
from skinattn.storage import Entry

FORMAT = "isic-archive"
NEW_SCHEMA_COLUMNS: tuple[str, ...] = tuple(f"diagnosis_{level}" for level in range(1, 6))

# ISIC diagnosis terms (lower-cased, hyphens as spaces) → HAM10000 class. HAM10000's akiec holds actinic
# keratoses and intraepithelial carcinoma (Bowen's disease), so invasive squamous cell carcinoma is left
# unmapped; its vasc holds angiomas, angiokeratomas, pyogenic granulomas and haemorrhage; its bkl holds
# seborrheic keratoses, solar lentigines and lichen planus-like keratoses.
ISIC_TO_HAM10000: dict[str, str] = {
    # melanoma (every term of the melanoma branch)
    "melanoma": "mel",
    "melanoma invasive": "mel",
    "melanoma in situ": "mel",
    "melanoma, nos": "mel",
    "melanoma metastasis": "mel",
    "malignant melanocytic proliferations (melanoma)": "mel",
    # nevi
    "nevus": "nv",
    "melanocytic nevus": "nv",
    # basal cell carcinoma
    "basal cell carcinoma": "bcc",
    # actinic keratosis / intraepithelial carcinoma
    "actinic keratosis": "akiec",
    "solar or actinic keratosis": "akiec",
    "squamous cell carcinoma in situ": "akiec",
    "bowen's disease": "akiec",
    # benign keratosis-like lesions
    "seborrheic keratosis": "bkl",
    "pigmented benign keratosis": "bkl",
    "solar lentigo": "bkl",
    "lichen planus like keratosis": "bkl",
    # dermatofibroma
    "dermatofibroma": "df",
    # vascular lesions
    "vascular lesion": "vasc",
    "benign soft tissue proliferations vascular": "vasc",
    "angioma": "vasc",
    "hemangioma": "vasc",
    "angiokeratoma": "vasc",
    "pyogenic granuloma": "vasc",
    "hemorrhage": "vasc",
}
assert set(ISIC_TO_HAM10000.values()) == set(HAM10000_CLASSES)


def normalise_term(term: str) -> str:
    """Lower-case; hyphens and runs of spaces become one space ("planus-like" → "planus like")."""
    return re.sub(r"[\s\-]+", " ", term.strip().lower())


def map_diagnosis(row: dict[str, str], columns: list[str]) -> tuple[str, str]:
    """(class, "") for a mapped row, ("", "") for a row with no diagnosis, ("", term) for an unmapped one.

    ``columns`` are the row's diagnosis columns from the most specific to the least.
    """
    terms = [row[column] for column in columns if row.get(column, "")]
    for term in terms:
        label = ISIC_TO_HAM10000.get(normalise_term(term))
        if label:
            return label, ""
    if terms:
        return "", " / ".join(reversed(terms))
    if row.get("benign_malignant"):
        return "", f"benign_malignant={row['benign_malignant']} only (no diagnosis)"
    return "", ""


def read(source: str, entries: list[Entry], metadata: str | None = None, keep_unmapped: bool = False,
         **_: object) -> Collection:
    table = find_table(
        entries,
        source,
        name_matches=lambda name: name == "metadata.csv",
        header_matches=lambda header: "isic_id" in header,
        description="ISIC Archive metadata.csv (isic_id, ...)",
        explicit=metadata,
    )
    frame = read_table(table)
    require_columns(frame, ("isic_id",), table)
    columns = [c for c in reversed(NEW_SCHEMA_COLUMNS) if c in frame.columns]
    if "diagnosis" in frame.columns:
        columns.append("diagnosis")

    labels, keep, excluded = [], [], []
    for record in frame.to_dict("records"):
        label, unmapped = map_diagnosis(record, columns)
        labels.append(label)
        keep.append(not unmapped or keep_unmapped)
        if unmapped:
            excluded.append(Exclusion(record["isic_id"], record[WHERE],
                                      f"diagnosis {unmapped!r} does not map onto a HAM10000 class"))
    frame.insert(0, "image_id", frame["isic_id"])
    frame["label"] = labels
    # lesion_id is a column of newer archive metadata; without it each image is its own lesion.
    if "lesion_id" in frame.columns:
        frame["lesion_id"] = frame["lesion_id"].where(frame["lesion_id"] != "", frame["image_id"])
    else:
        frame["lesion_id"] = frame["image_id"]
    return Collection(
        format=FORMAT,
        source=source,
        classes=list(HAM10000_CLASSES),
        rows=frame[keep].reset_index(drop=True),
        images=[e for e in entries if e.is_image],
        metadata_file=table.relpath,
        labels_required=False,
        excluded=[] if keep_unmapped else excluded,
        options={"keep_unmapped": keep_unmapped, "unmapped_rows": len(excluded)},
    )
