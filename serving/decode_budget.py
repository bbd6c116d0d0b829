"""A memory budget for decoding uploads, shared by every request in flight.

Decoding costs memory in proportion to an image's pixels, not to its upload size: a 38 KB PNG of 6300×6300
decodes to 119 MB of RGB, and with its intermediate copies costs the server about 300 MB while it is being
decoded and resized. The per-request pixel limit (``SKINATTN_MAX_PIXELS``) bounds one request; this budget
bounds their sum, so that many such requests at once cannot exhaust the server. A request that would take
the sum over the budget is answered 503 with ``Retry-After`` instead of waiting in memory; one request of up
to ``SKINATTN_MAX_PIXELS`` always fits, since the budget may not be smaller.

When the last decode in flight ends and a large one ran since the previous trim, the freed heap is handed
back to the system (glibc's ``malloc_trim``): glibc otherwise keeps it, and a burst of large images left the
server at its peak RSS for good. Only bursts with large decodes pay for the trim (a few ms); a fixed ``MALLOC_MMAP_THRESHOLD_`` would return memory too, but cost
every forward pass (-25 % throughput measured, BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Iterator

# Decodes at least this large (12 MB of RGB) trim the heap when they end.
TRIM_FROM_PIXELS = 4_000_000


@functools.cache
def _malloc_trim():  # noqa: ANN202 - a ctypes function, or None where there is no glibc
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim with
        return None


def return_freed_memory() -> bool:
    """Hand the heap's free pages back to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class BudgetSpent(Exception):
    """The pixels being decoded by other requests leave no room for this one now; retry shortly."""


class DecodeBudget:
    """At most ``max_pixels`` pixels being decoded at once, over all requests (thread-safe)."""

    def __init__(self, max_pixels: int, max_pixels_per_request: int) -> None:
        if max_pixels < max_pixels_per_request:
            raise ValueError(f"the decode budget of {max_pixels:,} pixels is smaller than one allowed image "
                             f"({max_pixels_per_request:,} pixels): no such upload could ever be decoded")  # fmt: skip
        self.max_pixels = max_pixels
        self._in_use = 0
        self._large_since_trim = False  # a large decode ended since the heap was last trimmed
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._in_use

    @contextlib.contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` of the budget for the block; BudgetSpent at once when they do not fit."""
        with self._lock:
            if self._in_use + pixels > self.max_pixels:
                raise BudgetSpent(f"{self._in_use:,} of {self.max_pixels:,} pixels are being decoded; "
                                  f"this image needs {pixels:,}")  # fmt: skip
            self._in_use += pixels
        try:
            yield
        finally:
            with self._lock:
                self._in_use -= pixels
                self._large_since_trim |= pixels >= TRIM_FROM_PIXELS
                trim = self._large_since_trim and self._in_use == 0
                if trim:
                    self._large_since_trim = False
            if trim:  # no decode in flight: trimming now cannot race one for the pages it is filling
                return_freed_memory()
