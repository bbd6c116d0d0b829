"""The storage layer's operations on locations of any kind: list, open a bounded stream, read, publish a
folder, fetch a folder.

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
from skinattn.storage.limits import DEFAULT_MAX_ARCHIVE_BYTES, BoundedReader, max_fetch_bytes, max_file_bytes


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


def _fetch_entries(src: str) -> list[Entry]:
    """The files under a folder or an S3 prefix, as they are (archives are files here, not opened)."""
    if src.startswith(S3_SCHEME):
        entries = list(s3.list_entries(src, strict=False))
    else:
        root = Path(src)
        if not root.is_dir():
            raise DataError(f"{src}: not a folder or an s3:// prefix" if root.exists() else f"{src}: no such folder")
        entries = [
            entry or Entry(path.relative_to(root.resolve()).as_posix(), str(path), path.stat().st_size)
            for path, entry in local.walk_folder(root)
        ]
    if not entries:
        raise DataError(f"{src}: no files found")
    return entries


def _target(dest: Path, entry: Entry, src: str) -> Path:
    """Where ``entry`` lands under ``dest``; a key that would land elsewhere (``..``, absolute) is refused."""
    parts = entry.relpath.split("/")
    if entry.relpath.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise DataError(f"{entry.location}: the name {entry.relpath!r} would land outside the copy of {src}; refused")
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest.resolve()):
        raise DataError(f"{entry.location}: resolves outside {dest}; refused")
    return target


def fetch_folder(src: str, dest: str | Path, max_total_bytes: int | None = None) -> list[Path]:
    """Copy every file under ``src`` (a folder, or ``s3://bucket/prefix``) into the local folder ``dest``,
    keeping relative paths; return the written paths. The mirror of :func:`publish_folder`.

    The storage policy applies as for reads, with one budget for the whole copy instead of the per-file read
    budget (a resize cache is one file of gigabytes, written to disk, never held in memory): the declared
    total is checked against ``max_total_bytes`` (default ``$SKINATTN_MAX_FETCH_BYTES``, 64 GiB) before
    anything is copied, and every file is read as a bounded stream of what is left of it. Links out of a
    local folder and names that would land outside ``dest`` are refused; each file is written under a
    temporary name and renamed, so no reader sees half a file.
    """
    from skinattn.fileio import atomic_path

    budget = max_fetch_bytes() if max_total_bytes is None else max_total_bytes
    dest = Path(dest)
    entries = _fetch_entries(src)
    for entry in entries:
        if entry.refused:
            raise DataError(entry.refused)
    targets = [_target(dest, entry, src) for entry in entries]
    declared = sum(entry.size for entry in entries)
    if declared > budget:
        raise DataError(
            f"{src}: {len(entries)} files of {declared:,} bytes, over the limit of {budget:,} for one copy "
            "(SKINATTN_MAX_FETCH_BYTES); refused"
        )
    left = budget
    for entry, target in zip(entries, targets, strict=True):
        with open_stream(entry.location, max_bytes=left) as stream, atomic_path(target) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
                left -= out.tell()
    return targets
