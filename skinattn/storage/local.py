"""Local folders: listing with the link policy, and opening regular files only.

A source folder may hold symbolic links (data sets are often assembled from links into a shared store), but
a link must resolve inside the source root: one out of it could expose any file the process can read. Only
regular files are opened: reading a FIFO blocks forever and a link to ``/dev/zero`` never ends.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from skinattn.errors import DataError
from skinattn.storage.entries import IGNORED_PARTS, Entry, is_clutter
from skinattn.storage.limits import BoundedReader, check_size

_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))  # fmt: skip


def walk_folder(root: Path) -> Iterator[tuple[Path, Entry | None]]:
    """Every file under ``root`` in sorted order: ``(path, entry)`` with entry None for a ``.zip`` archive
    (the caller lists its members), a refused entry for a link that resolves outside ``root``."""
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_PARTS)
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            relpath = path.relative_to(root).as_posix()
            if is_clutter(relpath):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                yield path, Entry(relpath, str(path), 0, refused=f"{relpath}: a link that resolves outside {root}; refused")
            elif path.suffix.lower() == ".zip":
                yield path, None
            else:
                try:
                    size = path.stat().st_size
                except OSError:  # a dangling link: listed, and refused by name when read
                    size = 0
                yield path, Entry(relpath, str(path), size)


def open_file(location: str, max_bytes: int) -> BoundedReader:
    """A bounded stream over a regular file (a link is followed to one), its size checked before reading.

    Anything else is refused by name. ``O_NONBLOCK`` keeps the open itself from waiting for a FIFO's
    writer; it changes nothing for a regular file.
    """
    try:
        fd = os.open(location, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DataError(f"{location}: cannot read ({exc.strerror or exc})") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "not a regular file")
            raise DataError(f"{location}: {kind}, not a regular file; refused")
        check_size(location, status.st_size, max_bytes)
        handle = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    return BoundedReader(handle, location, max_bytes)
