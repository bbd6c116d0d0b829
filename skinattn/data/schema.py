"""The manifest: one table that every later step (prepare, train, evaluate, score) reads.

A manifest is a CSV file (``manifest.csv``) with one row per image and a JSON sidecar
(``manifest.json``) holding what is true of the whole table: the ordered class list, the source format
and location. Required columns come first; a source's own metadata columns follow unchanged.

Columns:
  image_id    unique id of the image (ISIC_0024306, ...)
  image_path  where the image bytes are: a local path, ``s3://bucket/key``, or ``zip://<archive>!<member>``
  label       class code from ``ManifestInfo.classes``; empty when the image is unlabelled
  lesion_id   the lesion the image shows (several images may share one); equals image_id when unknown
  split       only after ``prepare``: train / val / test
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.errors import DataError
from skinattn.fileio import atomic_path, write_json

REQUIRED_COLUMNS: tuple[str, ...] = ("image_id", "image_path", "label", "lesion_id")
SPLIT_COLUMN = "split"
SPLITS: tuple[str, ...] = ("train", "val", "test")
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"


@dataclasses.dataclass
class ManifestInfo:
    """Facts about a whole manifest, stored beside it as JSON."""

    classes: list[str]
    format: str = "unknown"
    source: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def write_manifest(frame: pd.DataFrame, info: ManifestInfo, out_dir: str | Path) -> Path:
    """Write ``manifest.csv`` + ``manifest.json`` into ``out_dir`` atomically; return the CSV path."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"manifest is missing required column(s) {missing}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ordered = list(REQUIRED_COLUMNS) + [c for c in frame.columns if c not in REQUIRED_COLUMNS]
    csv_path = out / MANIFEST_CSV
    with atomic_path(csv_path) as tmp:
        frame[ordered].to_csv(tmp, index=False)
    write_json(out / MANIFEST_JSON, info.to_dict() | {"rows": int(len(frame))})
    return csv_path


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, ManifestInfo]:
    """Read a manifest from its folder or its CSV path; check the required columns and labels."""
    p = Path(path)
    csv_path = p / MANIFEST_CSV if p.is_dir() else p
    json_path = csv_path.with_name(MANIFEST_JSON)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no manifest here (expected {MANIFEST_CSV}, written by 'skinattn ingest')")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: not a manifest CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{csv_path}: missing required column(s) {missing}")
    if json_path.is_file():
        try:
            info = ManifestInfo.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSON and Unicode errors are ValueErrors
            raise DataError(f"{json_path}: not a manifest description ({exc})") from None
    else:
        labels = sorted({label for label in frame["label"] if label})
        info = ManifestInfo(classes=labels, source=str(csv_path))
    unknown = sorted({label for label in frame["label"] if label and label not in info.classes})
    if unknown:
        first = frame.index[frame["label"].isin(unknown)][0]
        raise DataError(f"{csv_path}: row {first + 2}: unknown label(s) {unknown}; known classes {info.classes}")
    return frame, info
