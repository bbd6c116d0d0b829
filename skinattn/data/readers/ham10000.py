"""HAM10000 (Harvard Dataverse doi:10.7910/DVN/DBW86T).

Layout: a metadata table ``HAM10000_metadata`` (with or without ``.csv``, comma- or tab-separated;
columns lesion_id, image_id, dx, dx_type, age, sex, localization, sometimes dataset) and the JPEGs
``<image_id>.jpg`` in one or more folders, or inside ``HAM10000_images_part_1.zip`` / ``..._part_2.zip``.
"""

from __future__ import annotations

import pandas as pd

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.readers.base import Collection, find_table, read_table, require_columns
from skinattn.storage import Entry

FORMAT = "ham10000"
DX_COLUMNS: tuple[str, ...] = ("lesion_id", "image_id", "dx")


def rows_from_dx_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the manifest's label column to a table in the HAM10000 schema (label = dx, lesion kept)."""
    frame = frame.copy()
    frame["label"] = frame["dx"].str.lower()
    # An empty lesion_id means "unknown lesion": the image then counts as its own lesion.
    frame["lesion_id"] = frame["lesion_id"].where(frame["lesion_id"] != "", frame["image_id"])
    return frame


def read(source: str, entries: list[Entry], metadata: str | None = None, **_: object) -> Collection:
    table = find_table(
        entries,
        source,
        name_matches=lambda name: name.startswith("ham10000_metadata"),
        header_matches=lambda header: set(DX_COLUMNS) <= set(header),
        description="HAM10000 metadata table (HAM10000_metadata[.csv] with lesion_id, image_id, dx)",
        explicit=metadata,
    )
    frame = read_table(table)
    require_columns(frame, DX_COLUMNS, table)
    return Collection(
        format=FORMAT,
        source=source,
        classes=list(HAM10000_CLASSES),
        rows=rows_from_dx_table(frame),
        images=[e for e in entries if e.is_image],
        metadata_file=table.relpath,
    )
