"""The storage layer's four operations on locations of any kind: list, open a bounded stream, read, publish.

Each dispatches on the location's scheme (see :mod:`skinattn.storage.entries`) to :mod:`.local`,
:mod:`.zips` or :mod:`.s3`, which hold the safety policy of their kind.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from skinattn.errors import DataError
from skinattn.storage import local, s3, zips
from skinattn.storage.entries import S3_SCHEME, ZIP_SCHEME, Entry, parse_s3_uri, split_zip_location
from skinattn.storage.limits import DEFAULT_MAX_ARCHIVE_BYTES, BoundedReader, max_file_bytes


def list_source(location: str, max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES, *, strict: bool = True) -> list[Entry]:
    """Every file of a collection, sorted by relative path.

    ``location`` is a folder, a ``.zip`` file or ``s3://bucket/prefix``. Zip archives found inside a
    folder are listed too, their members under ``<archive stem>/`` (HAM10000 ships its images as
    ``HAM10000_images_part_1.zip`` and ``..._part_2.zip`` beside the metadata file). Files that must not be
    read (links out of the folder; with ``strict=False`` also unsafe zip members) come back as refused
    entries; ``strict`` (the default, for training data) refuses a whole archive with an unsafe member.
    """
    if location.startswith(S3_SCHEME):
        entries = list(s3.list_entries(location, strict=strict))
    else:
        root = Path(location)
        if root.is_dir():
            entries = []
            for path, entry in local.walk_folder(root):
                if entry is not None:
                    entries.append(entry)
                else:
                    prefix = path.relative_to(root.resolve()).as_posix()[: -len(".zip")] + "/"
                    entries.extend(zips.list_members(path, prefix, max_archive_bytes, strict=strict))
        elif root.is_file() and zipfile.is_zipfile(root):
            entries = list(zips.list_members(root, "", max_archive_bytes, strict=strict))
        elif root.exists():
            raise DataError(f"{location}: not a folder, a .zip archive or an s3:// prefix")
        else:
            raise DataError(f"{location}: no such file or folder")
    if not entries:
        raise DataError(f"{location}: no files found")
    return sorted(entries, key=lambda entry: entry.relpath)


def open_stream(location: str, max_bytes: int | None = None) -> BoundedReader:
    """A read-only stream over the file at ``location`` that never yields more than ``max_bytes`` (default:
    the per-file budget, ``$SKINATTN_MAX_FILE_BYTES``); a file declaring more is refused before reading."""
    budget = max_file_bytes() if max_bytes is None else max_bytes
    if location.startswith(S3_SCHEME):
        return s3.open_object(location, budget)
    if location.startswith(ZIP_SCHEME):
        archive, member = split_zip_location(location)
        # The member's own budget and compression ratio are checked before anything is decompressed.
        return zips.open_member(archive, member, location)
    return local.open_file(location, budget)


def read_bytes(location: str, max_bytes: int | None = None) -> bytes:
    """The bytes of one file (a local path, ``zip://archive!member`` or ``s3://bucket/key``) within the budget."""
    with open_stream(location, max_bytes) as stream:
        return stream.read()


def publish_folder(folder: str | Path, dest_uri: str) -> list[str]:
    """Copy every file of ``folder`` under ``dest_uri`` (a folder, or ``s3://bucket/prefix``); return the
    destinations. Files of the same names are replaced (a nightly run refreshes one place); locally each
    file is written under a temporary name and renamed, so no reader sees half a file."""
    from skinattn.fileio import atomic_path

    folder = Path(folder)
    written = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if dest_uri.startswith(S3_SCHEME):
            bucket, prefix = parse_s3_uri(dest_uri)
            target = f"{S3_SCHEME}{bucket}/" + "/".join(part for part in (prefix.strip("/"), relative) if part)
            s3.upload_file(str(path), target)
        else:
            target = str(Path(dest_uri) / relative)
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
        written.append(target)
    return written
