"""Reading the files of a scoring source, tolerating unsafe entries one by one.

:mod:`skinattn.data.sources` refuses a whole zip archive when one entry would escape it, which is right for
training data. A scoring run must instead list that entry in its errors file and score the rest, so a zip
given as the source is listed and read here, entry by entry, with the same name check
(:func:`skinattn.data.sources.check_member_name`) and the same cap on the declared uncompressed size.

Zip handles are opened per process: a :class:`zipfile.ZipFile` inherited through ``fork`` shares its file
offset with the parent, and DataLoader workers reading through it concurrently would read garbage.
"""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

from skinattn.data import sources
from skinattn.data.sources import ZIP_SCHEME, Entry, check_member_name, read_bytes
from skinattn.errors import DataError

_lock = threading.Lock()
_handles: dict[tuple[int, str], zipfile.ZipFile] = {}


class ArchiveEntry(Entry):
    """An :class:`Entry` whose bytes are read by :func:`read_location` (so readers can use it unchanged)."""

    def read(self) -> bytes:
        return read_location(self.location)


def _zip_handle(archive: str) -> zipfile.ZipFile:
    key = (os.getpid(), archive)
    with _lock:
        handle = _handles.get(key)
        if handle is None:
            try:
                handle = zipfile.ZipFile(archive)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{archive}: not a readable zip archive ({exc})") from exc
            _handles[key] = handle
        return handle


def read_location(location: str) -> bytes:
    """The bytes at ``location``: zip members through a per-process handle, anything else via sources."""
    if not location.startswith(ZIP_SCHEME):
        return read_bytes(location)
    archive, _, member = location[len(ZIP_SCHEME):].rpartition("!")
    check_member_name(archive, member)  # also guards locations that did not come from our listing
    try:
        return sources.read_zip_member(_zip_handle(archive), member, location)
    except KeyError as exc:
        raise DataError(f"{location}: no member {member!r} in {archive}") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{location}: corrupt archive member ({exc})") from exc


def list_zip(path: str | os.PathLike[str], max_bytes: int = sources.DEFAULT_MAX_ARCHIVE_BYTES) -> tuple[list[Entry], dict[str, str]]:
    """The files of a zip archive, and the refused ones mapped to the reason (unsafe names).

    The whole archive is refused only when it cannot be opened or declares more than ``max_bytes``
    uncompressed in total (a zip bomb): that is not a fault of one entry.
    """
    archive_path = str(Path(path).resolve())
    try:
        with zipfile.ZipFile(archive_path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from exc
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise DataError(
            f"{path}: archive declares {total:,} bytes uncompressed, over the cap of {max_bytes:,} bytes "
            "(a zip bomb? raise the cap if it is genuine)"
        )
    entries: list[Entry] = []
    refused: dict[str, str] = {}
    for info in infos:
        if info.is_dir() or sources.is_clutter(info.filename):  # same rules as ingest
            continue
        try:
            check_member_name(str(path), info.filename)
        except DataError as exc:
            refused[info.filename] = str(exc).replace("; refusing to read this archive", "; entry refused")
            continue
        entries.append(ArchiveEntry(info.filename, f"{ZIP_SCHEME}{archive_path}!{info.filename}", info.file_size))
    return sorted(entries, key=lambda e: e.relpath), refused
