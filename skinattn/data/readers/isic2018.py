"""ISIC 2018 Task 3 (the HAM10000 images as a challenge).

Layout: ``ISIC2018_Task3_<Split>_Input/ISIC_XXXXXXX.jpg`` and either

- the challenge ground truth ``ISIC2018_Task3_<Split>_GroundTruth.csv``: image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
  one-hot floats. If ``ISIC2018_Task3_<Split>_LesionGroupings.csv`` (image, lesion_id) is present too,
  it supplies the lesion ids; otherwise each image is its own lesion.
- or the Dataverse test ground truth, in the HAM10000 schema (lesion_id, image_id, dx, ..., dataset).
"""

from __future__ import annotations

import pandas as pd

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.readers.base import (
    WHERE,
    Collection,
    Problem,
    find_table,
    one_hot_label,
    read_table,
    require_columns,
)
from skinattn.data.readers.ham10000 import DX_COLUMNS, rows_from_dx_table
from skinattn.storage import Entry

FORMAT = "isic2018"
ONE_HOT_COLUMNS: dict[str, str] = {code.upper(): code for code in HAM10000_CLASSES}


def _is_ground_truth(header: list[str]) -> bool:
    return ({"image", *ONE_HOT_COLUMNS} <= set(header)) or set(DX_COLUMNS) <= set(header)


def _lesion_groupings(entries: list[Entry]) -> tuple[dict[str, str], str]:
    tables = [e for e in entries if "lesiongroupings" in e.name.lower() and e.suffix == ".csv"]
    if len(tables) != 1:
        return {}, ""
    frame = read_table(tables[0])
    require_columns(frame, ("image", "lesion_id"), tables[0])
    return dict(zip(frame["image"], frame["lesion_id"], strict=True)), tables[0].relpath


def read(source: str, entries: list[Entry], metadata: str | None = None, **_: object) -> Collection:
    table = find_table(
        entries,
        source,
        name_matches=lambda name: "task3" in name and "groundtruth" in name and name.endswith(".csv"),
        header_matches=_is_ground_truth,
        description="ISIC 2018 Task 3 ground truth (image + MEL..VASC one-hot, or the Dataverse dx table)",
        explicit=metadata,
    )
    frame = read_table(table)
    images = [e for e in entries if e.is_image]
    if "dx" in frame.columns:  # the Dataverse form, HAM10000 schema
        require_columns(frame, DX_COLUMNS, table)
        return Collection(FORMAT, source, list(HAM10000_CLASSES), rows_from_dx_table(frame), images,
                          table.relpath, options={"ground_truth": "dx"})

    require_columns(frame, ["image", *ONE_HOT_COLUMNS], table)
    problems, labels = [], []
    for index, row in frame.iterrows():
        label, reason = one_hot_label(row, ONE_HOT_COLUMNS)
        if label is None:
            problems.append(Problem("bad_row", row[WHERE], reason, row["image"], index))
        labels.append(label or "")
    lesions, groupings_file = _lesion_groupings(entries)
    rows = pd.DataFrame({"image_id": frame["image"], "label": labels})
    rows["lesion_id"] = [lesions.get(image_id) or image_id for image_id in frame["image"]]
    rows = pd.concat([rows, frame.drop(columns=["image"])], axis=1)
    return Collection(FORMAT, source, list(HAM10000_CLASSES), rows, images, table.relpath, problems=problems,
                      options={"ground_truth": "one-hot", "lesion_groupings": groupings_file})
