"""True classes from the metadata of an ``isic image download`` archive, when it has diagnoses.

The mapping of ISIC diagnosis terms onto the HAM10000 classes is the ingest reader's
(:mod:`skinattn.data.readers.isic_archive`); rows whose diagnosis does not map stay unlabelled here,
because scoring still scores their images.
"""

from __future__ import annotations

from collections.abc import Sequence

from skinattn.data.readers import isic_archive
from skinattn.data.readers.base import WHERE
from skinattn.storage import Entry
from skinattn.errors import DataError

METADATA_NAME = "metadata.csv"


def read_labels(source: str, entries: Sequence[Entry]) -> tuple[dict[str, str], str | None]:
    """``{image_id: class}`` for the labelled rows, and the metadata file they came from.

    Without a ``metadata.csv``, or with one that has no diagnosis columns, the result is empty: an
    archive downloaded for scoring need not carry labels. A ``metadata.csv`` that is not an ISIC table
    (no ``isic_id`` column) raises :class:`DataError` naming the file.
    """
    candidates = [e for e in entries if e.name.lower() == METADATA_NAME]
    if not candidates:
        return {}, None
    # The top-level table is the download's; a deeper one (in a sub-collection) is only used when alone.
    table = min(candidates, key=lambda e: (e.relpath.count("/"), e.relpath))
    collection = isic_archive.read(source, [table], keep_unmapped=True)
    rows = collection.rows
    repeated = rows[rows["image_id"].duplicated(keep=False) & (rows["image_id"] != "")]
    if not repeated.empty:
        image_id = repeated["image_id"].iloc[0]
        lines = [where.rsplit(":", 1)[-1] for where in repeated.loc[repeated["image_id"] == image_id, WHERE]]
        raise DataError(f"{table.relpath}: isic_id {image_id} is listed {len(lines)} times (lines "
                        f"{', '.join(lines)}): which label is true is ambiguous; keep one row per image")  # fmt: skip
    labelled = rows[rows["label"] != ""]
    return dict(zip(labelled["image_id"], labelled["label"])), table.relpath
