"""ISIC 2017 Part 3 (lesion classification).

Layout: ``ISIC-2017_<Split>_Data/ISIC_XXXXXXX.jpg`` (the ``_superpixels.png`` files beside them are
ignored) and ``ISIC-2017_<Split>_Part3_GroundTruth.csv`` with image_id, melanoma, seborrheic_keratosis
(0.0/1.0; a nevus has both at 0).

Two tasks: ``3class`` (mel, nv, sk) and the paper's ``2class`` (nv vs sk), in which melanoma rows are
kept out of the manifest and counted in the report.
"""

from __future__ import annotations

from skinattn.data.readers.base import (
    WHERE,
    Collection,
    Exclusion,
    Problem,
    find_table,
    read_table,
    require_columns,
)
from skinattn.storage import Entry

FORMAT = "isic2017"
TASKS: dict[str, tuple[str, ...]] = {"3class": ("mel", "nv", "sk"), "2class": ("nv", "sk")}
GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("image_id", "melanoma", "seborrheic_keratosis")
# Per-image derivatives shipped beside the images (superpixels, Part 1 masks): not lesion images.
_DERIVATIVE_SUFFIXES: tuple[str, ...] = ("_superpixels", "_segmentation")


def _flag(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number in (0.0, 1.0) else None


def read(source: str, entries: list[Entry], metadata: str | None = None, task: str = "3class",
         **_: object) -> Collection:
    if task not in TASKS:
        raise ValueError(f"unknown ISIC 2017 task {task!r}; choose from {sorted(TASKS)}")
    table = find_table(
        entries,
        source,
        name_matches=lambda name: "part3_groundtruth" in name,
        header_matches=lambda header: set(GROUND_TRUTH_COLUMNS) <= set(header),
        description="ISIC 2017 Part 3 ground truth (image_id, melanoma, seborrheic_keratosis)",
        explicit=metadata,
    )
    frame = read_table(table)
    require_columns(frame, GROUND_TRUTH_COLUMNS, table)

    labels, problems, excluded, keep = [], [], [], []
    for index, row in frame.iterrows():
        melanoma, keratosis = _flag(row["melanoma"]), _flag(row["seborrheic_keratosis"])
        label = ""
        if melanoma is None or keratosis is None:
            problems.append(Problem("bad_row", row[WHERE], "melanoma and seborrheic_keratosis must be 0 or 1, "
                                    f"got {row['melanoma']!r} and {row['seborrheic_keratosis']!r}",
                                    row["image_id"], index))
        elif melanoma and keratosis:
            problems.append(Problem("bad_row", row[WHERE], "both melanoma and seborrheic_keratosis are 1",
                                    row["image_id"], index))
        else:
            label = "mel" if melanoma else "sk" if keratosis else "nv"
        if label and label not in TASKS[task]:
            excluded.append(Exclusion(row["image_id"], row[WHERE], f"{label} is not a class of the {task} task"))
            keep.append(False)
        else:
            keep.append(True)
        labels.append(label)
    frame["label"] = labels
    # ISIC 2017 publishes no lesion grouping: each image is its own lesion.
    frame["lesion_id"] = frame["image_id"]
    kept = frame[keep]
    # Problem rows refer to positions in the full table; re-point them at the kept table.
    position = {old: new for new, old in enumerate(kept.index)}
    problems = [Problem(p.kind, p.where, p.reason, p.image_id, position[p.row]) for p in problems]
    return Collection(
        format=FORMAT,
        source=source,
        classes=list(TASKS[task]),
        rows=kept.reset_index(drop=True),
        images=[e for e in entries if e.is_image and not e.stem.endswith(_DERIVATIVE_SUFFIXES)],
        metadata_file=table.relpath,
        problems=problems,
        excluded=excluded,
        options={"task": task},
    )
