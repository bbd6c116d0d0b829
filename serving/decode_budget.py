"""A memory budget for decoding uploads, shared by every request in flight.

Decoding costs memory in proportion to an image's pixels, not to its upload size: a 38 KB PNG of 6300×6300
decodes to 119 MB of RGB, and with its intermediate copies costs the server about 300 MB while it is being
decoded and resized. The per-request pixel limit (``SKINATTN_MAX_PIXELS``) bounds one request; this budget
bounds their sum, so that many such requests at once cannot exhaust the server. A request that would take
the sum over the budget is answered 503 with ``Retry-After`` instead of waiting in memory; one request of up
to ``SKINATTN_MAX_PIXELS`` always fits, since the budget may not be smaller.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


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
