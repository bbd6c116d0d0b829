"""How much one read may cost: the byte budgets every reader of the storage layer enforces.

Dermoscopy images are tens of MB at most and so are metadata tables; anything larger is a mistake or
hostile (a link to a huge file, a zip bomb's "image" of zeros). The budgets are checked on what a source
declares (file size, S3 ContentLength, a zip member's declared sizes) before anything is read, and again
on what is actually read (:class:`BoundedReader`), because a file can grow while it is read.

Users set them with environment variables, which reach every process of a run (DataLoader workers, KFP
pods through the task's env) without threading a parameter through every reader.
"""

from __future__ import annotations

import io
import os

from skinattn.errors import DataError

# Cap on one file read from a folder, a zip or S3.
DEFAULT_MAX_FILE_BYTES = 256 * 1024**2
# Cap on how much one zip member may expand (uncompressed / compressed size), for members over 1 MiB: JPEG and
# PNG barely compress (ratio ~1) and a CSV table compresses ~5-10x, while a zip bomb's "image" of zeros
# compresses ~1000x.
DEFAULT_MAX_COMPRESSION_RATIO = 100
RATIO_CHECK_FROM_BYTES = 1024**2
# Cap on the total declared uncompressed size of one archive (HAM10000's two zips are ~3 GB together).
DEFAULT_MAX_ARCHIVE_BYTES = 64 * 1024**3
# Cap on what one fetch_folder copies to local disk in all (a prepared data set with its 299 px resize cache is
# ~3 GB; its images.npy is one file far above the per-file read budget, which is meant for reads into memory).
DEFAULT_MAX_FETCH_BYTES = 64 * 1024**3


def max_file_bytes() -> int:
    """The per-file read budget: ``$SKINATTN_MAX_FILE_BYTES`` when set, else DEFAULT_MAX_FILE_BYTES."""
    return _env_limit("SKINATTN_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def max_compression_ratio() -> int:
    """``$SKINATTN_MAX_COMPRESSION_RATIO`` when set, else DEFAULT_MAX_COMPRESSION_RATIO."""
    return _env_limit("SKINATTN_MAX_COMPRESSION_RATIO", DEFAULT_MAX_COMPRESSION_RATIO)


def max_fetch_bytes() -> int:
    """The budget of one folder copy to disk (fetch_folder): ``$SKINATTN_MAX_FETCH_BYTES`` when set, else
    DEFAULT_MAX_FETCH_BYTES."""
    return _env_limit("SKINATTN_MAX_FETCH_BYTES", DEFAULT_MAX_FETCH_BYTES)


def _env_limit(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"environment variable {name}={value!r}: expected a positive whole number")
    return int(value)


def check_size(location: str, size: int, max_bytes: int) -> None:
    """Refuse, naming ``location``, a file of ``size`` bytes when that is over ``max_bytes``."""
    if size > max_bytes:
        raise DataError(f"{location}: {size:,} bytes, over the limit of {max_bytes:,} for one file; refused")


class BoundedReader(io.RawIOBase):
    """A read-only stream over ``raw`` that refuses to yield more than ``max_bytes`` in total.

    Errors of the underlying stream (the types in ``failures``: a zip member's CRC mismatch, an S3 read
    timeout) come out as :class:`DataError` naming ``location``, so a caller handles one exception type.
    """

    def __init__(self, raw, location: str, max_bytes: int, failures: tuple[type[BaseException], ...] = (OSError,),  # noqa: ANN001 - any object with read()/close()
                 failure: str = "cannot read") -> None:  # fmt: skip
        super().__init__()
        self._failure = failure
        self._raw = raw
        self.location = location
        self._left = max_bytes
        self._max_bytes = max_bytes
        self._failures = failures

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001 - a writable buffer (memoryview, bytearray)
        view = memoryview(buffer).cast("B")
        # Ask for one byte more than the budget allows, so that a stream longer than its budget is noticed.
        want = min(len(view), self._left + 1)
        if want == 0:
            return 0
        try:
            chunk = self._raw.read(want)
        except DataError:
            raise
        except self._failures as exc:
            raise DataError(f"{self.location}: {self._failure} ({exc})") from exc
        count = len(chunk)
        if count > self._left:
            raise DataError(
                f"{self.location}: more than {self._max_bytes:,} bytes (it grew while being read, or declared a "
                "smaller size than it has); refused"
            )
        view[:count] = chunk
        self._left -= count
        return count

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()
