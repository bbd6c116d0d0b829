"""Readers: one module per collection layout, each turning a source's files into a :class:`Collection`."""

from __future__ import annotations

from collections.abc import Callable

from skinattn.data.readers import ham10000, isic2017, isic2018, isic_archive
from skinattn.data.readers.base import Collection, Exclusion, Problem

# --format name → reader. Every reader takes (source, entries, metadata=None, **format options).
READERS: dict[str, Callable[..., Collection]] = {
    ham10000.FORMAT: ham10000.read,
    isic2017.FORMAT: isic2017.read,
    isic2018.FORMAT: isic2018.read,
    isic_archive.FORMAT: isic_archive.read,
}
FORMATS: tuple[str, ...] = tuple(READERS)

__all__ = ["FORMATS", "READERS", "Collection", "Exclusion", "Problem"]
