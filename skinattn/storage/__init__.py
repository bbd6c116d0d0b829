"""One storage layer for every reader: local folders, zip archives and S3 prefixes behind one interface.

- :func:`list_source` lists a collection as :class:`Entry` objects (relative path, location, declared size,
  and a reason when the file must not be read);
- :func:`open_stream` opens one file as a stream that never yields more than a byte budget;
- :func:`read_bytes` reads one file within that budget;
- :func:`publish_folder` copies a folder of results to a folder or an S3 prefix;
- :func:`fetch_folder` copies a folder or an S3 prefix into a local folder (the trainer nodes of a TrainJob).

The safety policy lives here, once, for ingest, scoring, the cache builder and the pipeline steps:

- regular files only (no FIFOs, devices, sockets), links resolved and kept inside the source root;
- a per-file byte budget checked on the declared size before reading and on what is read
  (``$SKINATTN_MAX_FILE_BYTES``, :mod:`.limits`);
- zip archives: no ``..`` or absolute member names, a cap on the declared total, a cap on each member's
  compression ratio (``$SKINATTN_MAX_COMPRESSION_RATIO``);
- fork-safe handles: cached zip handles and S3 clients are dropped in forked children (DataLoader workers).

The project's one S3 client is :func:`skinattn.storage.s3.client`; the registry's object store uses it too.
"""

from __future__ import annotations

import os

from skinattn.storage import s3, zips
from skinattn.storage.access import fetch_folder, list_source, open_stream, publish_folder, read_bytes
from skinattn.storage.entries import (
    IMAGE_SUFFIXES,
    S3_SCHEME,
    ZIP_SCHEME,
    Entry,
    is_clutter,
    parse_s3_uri,
    zip_location,
)
from skinattn.storage.limits import (
    DEFAULT_MAX_ARCHIVE_BYTES,
    DEFAULT_MAX_COMPRESSION_RATIO,
    DEFAULT_MAX_FETCH_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    max_compression_ratio,
    max_fetch_bytes,
    max_file_bytes,
)


def reset_handles() -> None:
    """Forget the cached S3 clients and open zip handles; runs in every forked child (see the docstring)."""
    s3.reset()
    zips.reset()


os.register_at_fork(after_in_child=reset_handles)

__all__ = [
    "DEFAULT_MAX_ARCHIVE_BYTES",
    "DEFAULT_MAX_COMPRESSION_RATIO",
    "DEFAULT_MAX_FETCH_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "IMAGE_SUFFIXES",
    "S3_SCHEME",
    "ZIP_SCHEME",
    "Entry",
    "fetch_folder",
    "is_clutter",
    "list_source",
    "max_compression_ratio",
    "max_fetch_bytes",
    "max_file_bytes",
    "open_stream",
    "parse_s3_uri",
    "publish_folder",
    "read_bytes",
    "reset_handles",
    "zip_location",
]
