"""Splitting a listing into shards that independent tasks score, the manifest file of one shard, and the
checks that put the scored shards back in order.

Shards are contiguous runs of the sorted listing whose sizes differ by at most one, so concatenating the
shard outputs in shard order gives exactly the unsharded output. A batch-scoring pipeline lists the
archive once, writes one manifest per shard (:func:`write_shard_manifests`) and what it listed
(:func:`listing_summary`, kept as ``listing.json`` beside the manifests), scores each with
:func:`skinattn.scoring.score_shard` into a folder of its own (with a ``shard.json`` naming the shard), and
merges with :func:`skinattn.scoring.merge_outputs` once :func:`shards_in_order` has checked that it got
every shard of that listing exactly once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skinattn.errors import DataError
from skinattn.fileio import write_json
from skinattn.scoring.listing import Listing, ScoreItem

SHARD_FORMAT = "skinattn-score-shard"
SHARD_LISTING_FILE = "listing.json"  # in the shards folder: what was listed and how it was split
SHARD_RESULT_FILE = "shard.json"  # in each scored shard's folder: which shard it is, its counts
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


def listing_summary(listing: Listing, manifests: Sequence[Path]) -> dict[str, Any]:
    """What was listed and how it was split (the shards folder's ``listing.json``): the merge checks the
    scored shards against it and reports its counts."""
    return {
        "source": listing.source,
        "listed": len(listing.items),
        "refused_while_listing": sum(1 for item in listing.items if item.refusal),
        "labelled": sum(1 for item in listing.items if item.label),
        "skipped_non_images": len(listing.skipped),
        "labels_file": listing.labels_file,
        "num_shards": len(manifests),
        "shards": [path.name for path in manifests],
    }


def shards_in_order(
    listing: dict[str, Any], scored_dirs: Sequence[str | os.PathLike[str]]
) -> list[tuple[Path, dict[str, Any]]]:
    """The scored shard folders and their ``shard.json``, sorted by shard index; refuses (DataError) a
    missing, repeated or foreign shard.

    ``listing`` is the :func:`listing_summary` the shards were made from; each folder's ``shard.json`` names
    its ``index``, ``count`` and ``source``. The fan-in of a pipeline's parallel loop does not promise
    iteration order, and concatenating shards in shard order is what makes the merged file equal to an
    unsharded run.
    """
    expected = int(listing["num_shards"])
    by_index: dict[int, tuple[Path, dict[str, Any]]] = {}
    for folder in map(Path, scored_dirs):
        info = json.loads((folder / SHARD_RESULT_FILE).read_text(encoding="utf-8"))
        index, count = int(info["index"]), int(info["count"])
        if count != expected or info["source"] != listing["source"]:
            raise DataError(f"{folder}: shard {index}/{count} of {info['source']} does not belong to this listing "
                            f"({expected} shard(s) of {listing['source']})")  # fmt: skip
        if index in by_index:
            raise DataError(f"shard {index} was scored twice ({by_index[index][0]} and {folder}); refusing to merge")
        by_index[index] = (folder, info)
    missing = sorted(set(range(expected)) - set(by_index))
    if missing:
        raise DataError(f"shard(s) {missing} of {expected} have no output; refusing to merge a partial result")
    return [by_index[i] for i in range(expected)]


def check_listing_accounted_for(listing: dict[str, Any], scored: int, errors: int) -> None:
    """Refuse (DataError) a merge whose scored and failed images do not add up to what was listed.

    Every listed item ends either scored or in the errors file; any other total means a shard scored a
    different list than its manifest, and the merged output would silently miss or invent images.
    """
    if scored + errors != listing["listed"]:
        raise DataError(f"the shards account for {scored + errors} image(s) but {listing['listed']} were listed; "
                        "refusing an incomplete merge")  # fmt: skip
