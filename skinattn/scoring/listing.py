"""What a scoring run scores: every image of a source, each with a unique id, in a fixed order.

A source is a folder, a ``.zip`` or an ``s3://`` prefix, either in the ``isic image download`` layout
(``<isic_id>.jpg`` + ``metadata.csv``) or holding plain images. Files that are not images
(``metadata.csv``, ``attribution.txt``, ``licenses/*.txt``) are not scored; they are counted in the run
summary. Entries that escape the source (a ``../`` zip member, a symbolic link out of the folder) become
*refused* items: they are never read, and they land in the errors file like undecodable images (the storage
layer lists in its tolerant mode, ``strict=False``, so that one bad entry does not refuse the archive).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from pathlib import PurePosixPath

from skinattn.errors import DataError
from skinattn.scoring.labels import read_labels
from skinattn.storage import DEFAULT_MAX_ARCHIVE_BYTES, IMAGE_SUFFIXES, Entry, list_source


@dataclasses.dataclass(frozen=True)
class ScoreItem:
    """One file to score (or to report as refused)."""

    image_id: str
    file: str  # path relative to the source root: what people recognise in an errors file
    location: str  # how to read it (local path, zip://archive!member, s3://bucket/key)
    refusal: str = ""  # non-empty: refused while listing, never read
    label: str = ""  # true class from the archive metadata, "" when unknown

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Listing:
    """The items of a source, in sorted file order, and the non-image files that were left out."""

    source: str
    items: list[ScoreItem]
    skipped: list[str]
    labels_file: str | None = None  # the metadata table the labels came from

    @property
    def labelled(self) -> bool:
        return any(item.label for item in self.items)


def _is_image(relpath: str) -> bool:
    return PurePosixPath(relpath).suffix.lower() in IMAGE_SUFFIXES


def assign_ids(relpaths: list[str]) -> list[str]:
    """Image ids: the file stem (``ISIC_0024306``), or the whole relative path where stems collide."""
    stems = [PurePosixPath(p).stem for p in relpaths]
    counts = collections.Counter(stems)
    return [stem if counts[stem] == 1 else path for stem, path in zip(stems, relpaths)]


def list_archive(source: str, max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES) -> Listing:
    """List ``source`` for scoring (see the module docstring). Raises :class:`DataError` if it is unusable."""
    listed = list_source(source, max_archive_bytes, strict=False)
    refused = {e.relpath: e.refused for e in listed if e.refused}
    entries = [e for e in listed if not e.refused]

    images = [e for e in entries if _is_image(e.relpath)]
    skipped = [e.relpath for e in entries if not _is_image(e.relpath)]
    labels, labels_file = read_labels(source, entries)

    found: list[tuple[str, str, str]] = [(e.relpath, e.location, "") for e in images]
    found += [(name, "", reason) for name, reason in refused.items()]
    found.sort()
    ids = assign_ids([relpath for relpath, _, _ in found])
    items = [
        ScoreItem(image_id, relpath, location, reason, labels.get(image_id, ""))
        for image_id, (relpath, location, reason) in zip(ids, found)
    ]
    if not items:
        raise DataError(f"{source}: no image files to score (found {len(skipped)} other file(s))")
    return Listing(source, items, skipped, labels_file)


def fingerprint(items: list[ScoreItem]) -> str:
    """A digest of what is scored and how it is split: a resumed run must see the same list."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.image_id}\t{item.location}\t{item.refusal}\n".encode())
    return digest.hexdigest()


__all__ = ["Entry", "Listing", "ScoreItem", "assign_ids", "fingerprint", "list_archive"]
