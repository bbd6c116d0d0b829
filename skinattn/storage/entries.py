"""What a listing yields: :class:`Entry` (one file of a source), and the location strings that name files.

A *location* names one file and is what a manifest stores in ``image_path``:

- a local path (``/data/ham/ISIC_0024306.jpg``),
- ``zip://<archive path>!<member>`` for a member of a local zip archive,
- ``s3://bucket/key`` for an object.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path, PurePosixPath

from skinattn.errors import DataError

ZIP_SCHEME = "zip://"
S3_SCHEME = "s3://"
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
# Operating-system clutter that is never part of a collection (macOS resource forks, Finder files).
IGNORED_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db"})


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file of a source: its path relative to the source root, its location, its declared size in bytes,
    and, for a file that must never be read (a link out of the folder, a ``../`` zip member), why."""

    relpath: str
    location: str
    size: int
    refused: str = ""

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.relpath).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.relpath).suffix.lower()

    @property
    def is_image(self) -> bool:
        return self.suffix in IMAGE_SUFFIXES

    def read(self) -> bytes:
        """The file's bytes within the read budget; a refused entry raises its reason."""
        if self.refused:
            raise DataError(self.refused)
        from skinattn.storage.access import read_bytes  # access lists entries: imported at call time

        return read_bytes(self.location)


def is_clutter(relpath: str) -> bool:
    """Operating-system clutter (macOS resource forks, Finder/Explorer files), never part of a collection."""
    path = PurePosixPath(relpath)
    return any(part in IGNORED_PARTS for part in path.parts) or path.name.startswith("._")


def zip_location(archive: str | os.PathLike[str], member: str) -> str:
    return f"{ZIP_SCHEME}{Path(archive).resolve()}!{member}"


def split_zip_location(location: str) -> tuple[str, str]:
    """``zip://<archive>!<member>`` as (archive path, member name)."""
    body = location[len(ZIP_SCHEME):]
    archive, sep, member = body.rpartition("!")
    if not sep or not archive or not member:
        raise DataError(f"{location}: a zip location must look like zip://<archive path>!<member>")
    return archive, member


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key); the key may be empty (a whole bucket)."""
    body = uri[len(S3_SCHEME):]
    bucket, _, key = body.partition("/")
    if not bucket:
        raise DataError(f"{uri}: an S3 location must look like s3://bucket/key")
    return bucket, key
