"""Splitting a listing into shards that independent tasks score, and the manifest file of one shard.

Shards are contiguous runs of the sorted listing whose sizes differ by at most one, so concatenating the
shard outputs in shard order gives exactly the unsharded output. A batch-scoring pipeline lists the
archive once, writes one manifest per shard (:func:`write_shard_manifests`), scores each with
:func:`skinattn.scoring.score_shard`, and merges with :func:`skinattn.scoring.merge_outputs`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

from skinattn.errors import DataError
from skinattn.fileio import write_json
from skinattn.scoring.listing import Listing, ScoreItem

SHARD_FORMAT = "skinattn-score-shard"
_SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class ShardManifest:
    """The items shard ``index`` of ``count`` scores, and the source they were listed from."""

    source: str
    index: int
    count: int
    items: list[ScoreItem]

    @property
    def name(self) -> str:
        return f"shard-{self.index:04d}-of-{self.count:04d}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SHARD_FORMAT,
            "source": self.source,
            "index": self.index,
            "count": self.count,
            "items": [item.to_dict() for item in self.items],
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ShardManifest:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: cannot read shard manifest ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
            raise DataError(f"{path}: not a skinattn shard manifest (format {SHARD_FORMAT!r} expected)")
        try:
            items = [ScoreItem(**item) for item in data["items"]]
            return cls(str(data["source"]), int(data["index"]), int(data["count"]), items)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed shard manifest ({exc!r})") from exc


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` → (2, 8): shard indices run from 0 to N-1."""
    match = _SHARD_PATTERN.match(text)
    if not match:
        raise DataError(f"--shard {text!r}: expected i/N, e.g. 0/4 (shards are numbered 0 to N-1)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise DataError(f"--shard {text!r}: need N >= 1 and 0 <= i < N")
    return index, count


def split_shards(listing: Listing, count: int) -> list[ShardManifest]:
    """``count`` contiguous shards of the listing (sizes differ by at most one; some may be empty)."""
    if count < 1:
        raise DataError(f"the number of shards must be at least 1, got {count}")
    total = len(listing.items)
    bounds = [total * i // count for i in range(count + 1)]
    return [ShardManifest(listing.source, i, count, listing.items[bounds[i]:bounds[i + 1]]) for i in range(count)]


def write_shard_manifests(listing: Listing, count: int, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``shard-IIII-of-NNNN.json`` per shard into ``out_dir``; return their paths in shard order."""
    out = Path(out_dir)
    return [shard.write(out / f"{shard.name}.json") for shard in split_shards(listing, count)]
