"""``prepare``: split a manifest, balance its training split, optionally cache resized images.

Writes into the output folder:

  manifest.csv / manifest.json   the input manifest plus a ``split`` column (train / val / test); the
                                 JSON records the split and balance settings under ``extra.prepare``
  train_balanced.csv             image_id, label, repeats: the balanced training index (repeats are
                                 expanded and augmented online by the training DataLoader)
  counts.json / counts.md        images per class in each split, and training counts before and after
                                 balancing
  cache/                         with ``cache_size``: one resized-image cache per split (skinattn.data.cache)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.data.balance import BalanceSpec, balance_report, balanced_index
from skinattn.data.cache import ensure_cache
from skinattn.data.schema import (
    SPLIT_COLUMN,
    SPLITS,
    ManifestInfo,
    read_manifest,
    write_manifest,
)
from skinattn.data.splits import SplitSpec, assign_splits, split_counts
from skinattn.errors import DataError
from skinattn.fileio import atomic_open, write_json

BALANCED_INDEX_CSV = "train_balanced.csv"
COUNTS_JSON = "counts.json"
COUNTS_TABLE = "counts.md"
CACHE_DIR = "cache"


@dataclasses.dataclass
class PrepareResult:
    """What ``prepare`` wrote, and the counts it printed."""

    out_dir: Path
    manifest_csv: Path
    balanced_index_csv: Path
    counts: dict[str, Any]
    table: str
    cache_dirs: dict[str, Path] = dataclasses.field(default_factory=dict)


def read_balanced_index(path: str | Path) -> pd.DataFrame:
    """Read ``train_balanced.csv`` (image_id, label, repeats) as written by ``prepare``."""
    csv_path = Path(path)
    if csv_path.is_dir():
        csv_path = csv_path / BALANCED_INDEX_CSV
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no balanced training index here (written by 'skinattn prepare')")
    frame = pd.read_csv(csv_path, dtype={"image_id": str, "label": str, "repeats": "int64"}, keep_default_na=False)
    missing = [c for c in ("image_id", "label", "repeats") if c not in frame.columns]
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {missing}")
    return frame


def counts_table(counts: dict[str, Any], classes: list[str]) -> str:
    """A Markdown table: images per class in each split and in the balanced training epoch."""
    header = ["class", *SPLITS, "train balanced"]
    rows = [header, ["---"] * len(header)]
    after = counts["balance"]["after"]
    for cls in [*classes, "total"]:
        rows.append([cls, *(str(counts["splits"][s][cls]) for s in SPLITS), str(after[cls])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        if row[0] == "---":
            cells = ["-" * widths[0], *("-" * (w - 1) + ":" for w in widths[1:])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def prepare(
    manifest: str | Path,
    out_dir: str | Path,
    split_spec: SplitSpec | None = None,
    balance_spec: BalanceSpec | None = None,
    *,
    cache_size: int | None = None,
    workers: int = 2,
    progress: bool = True,
) -> PrepareResult:
    """Split ``manifest`` (a folder with manifest.csv, or the CSV), balance train, write ``out_dir``."""
    split_spec = split_spec or SplitSpec()
    balance_spec = balance_spec or BalanceSpec(seed=split_spec.seed)
    frame, info = read_manifest(manifest)
    out = Path(out_dir)
    source_csv = Path(manifest) / "manifest.csv" if Path(manifest).is_dir() else Path(manifest)
    if (out / "manifest.csv").resolve() == source_csv.resolve():
        raise DataError(f"{out}: --out must differ from the input manifest's folder (it would be overwritten)")
    if SPLIT_COLUMN in frame.columns:
        # A prepared manifest can be prepared again with other settings; the old split is replaced.
        frame = frame.drop(columns=[SPLIT_COLUMN])

    frame[SPLIT_COLUMN] = assign_splits(frame, split_spec)
    train = frame[frame[SPLIT_COLUMN] == "train"]
    index = balanced_index(train, info.classes, balance_spec)
    counts = {
        "rows": len(frame),
        "lesions": int(frame["lesion_id"].nunique()),
        "split": dataclasses.asdict(split_spec),
        "splits": split_counts(frame, frame[SPLIT_COLUMN], info.classes),
        "balance": balance_report(index, info.classes, balance_spec),
    }
    table = counts_table(counts, info.classes)

    prepared_info = ManifestInfo(
        classes=info.classes,
        format=info.format,
        source=info.source,
        extra=info.extra
        | {"prepare": {"split": dataclasses.asdict(split_spec), "balance": dataclasses.asdict(balance_spec)}},
    )
    manifest_csv = write_manifest(frame, prepared_info, out)
    balanced_csv = out / BALANCED_INDEX_CSV
    with atomic_open(balanced_csv, newline="") as handle:
        index.to_csv(handle, index=False)
    write_json(out / COUNTS_JSON, counts)
    with atomic_open(out / COUNTS_TABLE) as handle:
        handle.write(table)

    cache_dirs: dict[str, Path] = {}
    if cache_size is not None:
        for split in SPLITS:
            rows = frame[frame[SPLIT_COLUMN] == split]
            if len(rows):
                cache = ensure_cache(rows, out / CACHE_DIR, cache_size, split, workers=workers, progress=progress)
                cache_dirs[split] = cache.path
    return PrepareResult(out, manifest_csv, balanced_csv, counts, table, cache_dirs)
