"""Local zip archives: checked listing, shared per-process handles, budgeted member streams.

Defences, all decided on what the archive declares before anything is decompressed:

- a member name with ``..`` or an absolute path (zip-slip) is refused;
- an archive whose declared uncompressed total is over a cap is refused whole (a zip bomb);
- a member over the per-file budget, or expanding more than the compression-ratio cap, is refused by name.

zipfile never yields more than a member's declared size (it stops there and checks the CRC), so the
declared sizes bound what reading can cost.

Handles are cached per (path, mtime, size), so a rewritten archive is reopened, and shared between threads
(zipfile serialises reads of the underlying file). The cache is emptied in forked children (see
:func:`skinattn.storage.reset_handles`): a handle inherited through ``fork`` shares its file offset with the
parent, and DataLoader workers reading through it concurrently would read garbage.
"""

from __future__ import annotations

import functools
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from skinattn.errors import DataError
from skinattn.storage.entries import Entry, is_clutter, zip_location
from skinattn.storage.limits import (
    RATIO_CHECK_FROM_BYTES,
    BoundedReader,
    check_size,
    max_compression_ratio,
    max_file_bytes,
)


def check_member_name(archive: str, name: str) -> str:
    """``""`` for a member name that stays inside the archive, else why it is unsafe (zip-slip)."""
    normalised = name.replace("\\", "/")
    is_absolute = normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":")
    if is_absolute or ".." in PurePosixPath(normalised).parts:
        return (f"{archive}: unsafe archive entry {name!r}: entries must stay inside the archive "
                "(no '..' components, no absolute paths)")  # fmt: skip
    return ""


@functools.lru_cache(maxsize=16)
def _cached_handle(path: str, mtime_ns: int, size: int) -> zipfile.ZipFile:
    del mtime_ns, size  # only cache-key material
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from exc


def open_archive(path: str | os.PathLike[str]) -> zipfile.ZipFile:
    """The shared read-only handle on a local zip archive (opened once per process and archive version)."""
    resolved = str(Path(path).resolve())
    try:
        status = os.stat(resolved)
    except OSError as exc:
        raise DataError(f"{path}: cannot open archive ({exc.strerror})") from exc
    return _cached_handle(resolved, status.st_mtime_ns, status.st_size)


def reset() -> None:
    """Forget every cached handle (run in forked children)."""
    _cached_handle.cache_clear()


def list_members(archive_path: Path, prefix: str, max_archive_bytes: int, *, strict: bool) -> Iterator[Entry]:
    """The files of an archive as entries named ``prefix + member``.

    ``strict`` (training data) refuses the whole archive for one unsafe name or a nested archive; otherwise
    (scoring) an unsafe member becomes a refused entry and a nested archive an ordinary, non-image entry.
    """
    archive = open_archive(archive_path)
    infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    if total > max_archive_bytes:
        raise DataError(
            f"{archive_path}: archive declares {total:,} bytes uncompressed, over the cap of {max_archive_bytes:,} "
            "bytes (a zip bomb? raise the cap with --max-archive-bytes if it is genuine)"
        )
    for info in infos:
        if info.is_dir() or is_clutter(info.filename):
            continue
        location = zip_location(archive_path, info.filename)
        unsafe = check_member_name(str(archive_path), info.filename)
        if unsafe and strict:
            raise DataError(f"{unsafe}; refusing to read this archive")
        if unsafe:
            yield Entry(prefix + info.filename, location, info.file_size, refused=f"{unsafe}; entry refused")
        elif strict and info.filename.lower().endswith(".zip"):
            raise DataError(
                f"{archive_path}: contains another archive {info.filename!r}; nested archives are not read "
                "(extract the outer archive and ingest the folder)"
            )
        else:
            yield Entry(prefix + info.filename, location, info.file_size)


def open_member(archive_path: str, member: str, location: str) -> BoundedReader:
    """A stream over one member, within the per-file budget and the compression-ratio cap (both checked on
    the declared sizes before anything is decompressed)."""
    unsafe = check_member_name(archive_path, member)  # also guards locations that did not come from a listing
    if unsafe:
        raise DataError(f"{unsafe}; refused")
    archive = open_archive(archive_path)
    try:
        info = archive.getinfo(member)
    except KeyError as exc:
        raise DataError(f"{location}: no member {member!r} in {archive_path}") from exc
    budget = max_file_bytes()
    check_size(location, info.file_size, budget)
    ratio = info.file_size / max(info.compress_size, 1)
    limit = max_compression_ratio()
    if info.file_size > RATIO_CHECK_FROM_BYTES and ratio > limit:
        raise DataError(
            f"{location}: expands {ratio:,.0f}:1 ({info.compress_size:,} to {info.file_size:,} bytes), over the "
            f"cap of {limit}:1 for one member (a zip bomb? set SKINATTN_MAX_COMPRESSION_RATIO if it is genuine)"
        )
    try:
        handle = archive.open(info)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{location}: corrupt archive member ({exc})") from exc
    return BoundedReader(handle, location, budget, failures=(zipfile.BadZipFile, OSError, EOFError),
                         failure="corrupt archive member")
