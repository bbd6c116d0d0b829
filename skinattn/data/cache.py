"""A preprocessing cache: every image decoded and resized once, so training never decodes full-size JPEGs.

Layout: one folder per (name, size, source fingerprint) under a cache root::

    <root>/<name>-<size>px-<key[:16]>/
        images.npy    uint8 array (N, size, size, 3), read back as a memory map
        index.csv     image_id, image_path in row order
        cache.json    the full key, size, resampling filter, row count, format version

The key is a SHA-256 over the format version, the size, the resampling filter and, for every row in
order, its image_id, its location and the source file's size and modification time (for ``zip://``
members, the archive's). Any change to the rows or to a local source file gives a new key, so a stale
cache is never found, only rebuilt. Objects on ``s3://`` are identified by location alone: they are taken
to be immutable under their key (rebuild with ``force=True`` if one was overwritten in place).

A cache is built in a hidden temporary folder beside its final name and renamed into place when
complete, so a killed build never leaves a half-written cache that a later run would trust.

Images are resized to ``size x size`` (squashing the 4:3 HAM10000 frames, as the authors' pipeline did)
with Pillow's bicubic filter, from the decoded RGB image (a JPEG decoded at the smallest DCT scale that
keeps both sides at least ``size``: see ``skinattn.data.images.decode_image``); ``load_resized`` does
exactly what the cache stores, for code paths that read images directly.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from skinattn.data.images import open_image
from skinattn.progress import bar_options
from skinattn.storage import S3_SCHEME, ZIP_SCHEME
from skinattn.errors import DataError
from skinattn.fileio import write_json

# 2: JPEGs decoded with DCT scaling to at least the cache size (version 1 caches decoded them in full).
CACHE_FORMAT_VERSION = 2
RESAMPLE = Image.Resampling.BICUBIC
IMAGES_FILE = "images.npy"
INDEX_FILE = "index.csv"
META_FILE = "cache.json"


def resize_image(image: Image.Image, size: int) -> np.ndarray:
    """``image`` (RGB) resized to ``size x size`` as an HxWx3 uint8 array: the cache's transform."""
    return np.asarray(image.convert("RGB").resize((size, size), RESAMPLE), dtype=np.uint8)


def load_resized(location: str, size: int) -> np.ndarray:
    """Decode the image at ``location`` and resize it exactly as the cache does."""
    return resize_image(open_image(location, at_least=size), size)


def _source_stamp(location: str) -> str:
    """Size and mtime of the file behind ``location`` ('' for S3 objects, identified by location)."""
    if location.startswith(S3_SCHEME):
        return ""
    path = location[len(ZIP_SCHEME) :].split("!", 1)[0] if location.startswith(ZIP_SCHEME) else location
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise DataError(f"{location}: cannot read the source image for the cache: {exc.strerror}") from exc
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def cache_key(image_ids: Sequence[str], locations: Sequence[str], size: int) -> str:
    """Fingerprint of what a cache of these rows at this size would hold (see the module docstring)."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}|{size}|{RESAMPLE.name}\n".encode())
    for image_id, location in zip(image_ids, locations, strict=True):
        digest.update(f"{image_id}|{location}|{_source_stamp(location)}\n".encode())
    return digest.hexdigest()


class ResizedImageCache:
    """A built cache, opened read-only: ``cache[i]`` or ``cache.get(image_id)`` is an HxWx3 uint8 array."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
            index = pd.read_csv(self.path / INDEX_FILE, dtype=str, keep_default_na=False)
            self.images = np.load(self.path / IMAGES_FILE, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: unreadable image cache ({exc}); delete it to rebuild") from exc
        self.image_ids: list[str] = index["image_id"].tolist()
        self.size = int(self.meta["size"])
        self.key = str(self.meta["key"])
        if self.images.shape != (len(self.image_ids), self.size, self.size, 3):
            raise DataError(
                f"{self.path}: images.npy has shape {self.images.shape}, expected "
                f"({len(self.image_ids)}, {self.size}, {self.size}, 3); delete it to rebuild"
            )
        self._positions = {image_id: i for i, image_id in enumerate(self.image_ids)}

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, position: int) -> np.ndarray:
        return self.images[position]

    def position(self, image_id: str) -> int:
        try:
            return self._positions[image_id]
        except KeyError:
            raise DataError(f"{self.path}: image {image_id} is not in this cache") from None

    def get(self, image_id: str) -> np.ndarray:
        return self.images[self.position(image_id)]


def cache_dir(root: str | Path, name: str, size: int, key: str) -> Path:
    """Where the cache with this name, size and key lives under ``root``."""
    return Path(root) / f"{name}-{size}px-{key[:16]}"


def open_cache(frame: pd.DataFrame, root: str | Path, size: int, name: str = "all") -> ResizedImageCache | None:
    """The up-to-date cache of ``frame``'s rows at ``size``, or None when there is none (or only stale ones)."""
    key = cache_key(frame["image_id"].tolist(), frame["image_path"].tolist(), size)
    path = cache_dir(root, name, size, key)
    if not (path / META_FILE).is_file():
        return None
    cache = ResizedImageCache(path)
    return cache if cache.key == key else None


def build_cache(
    frame: pd.DataFrame,
    root: str | Path,
    size: int,
    name: str = "all",
    *,
    workers: int = 2,
    progress: bool = True,
) -> ResizedImageCache:
    """Decode and resize every row of ``frame`` (columns image_id, image_path) into a new cache.

    Pillow releases the GIL while decoding and resizing, so ``workers`` threads run in parallel. Older
    caches with the same name and size are removed once the new one is in place.
    """
    if size < 1:
        raise DataError(f"cache size must be a positive number of pixels, got {size}")
    if len(frame) == 0:
        raise DataError(f"cannot cache the empty split {name!r}")
    image_ids = frame["image_id"].tolist()
    locations = frame["image_path"].tolist()
    key = cache_key(image_ids, locations, size)
    final = cache_dir(root, name, size, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        _write_images(staging / IMAGES_FILE, locations, size, workers, f"cache {name} {size}px" if progress else None)
        pd.DataFrame({"image_id": image_ids, "image_path": locations}).to_csv(staging / INDEX_FILE, index=False)
        write_json(
            staging / META_FILE,
            {
                "format_version": CACHE_FORMAT_VERSION,
                "key": key,
                "name": name,
                "size": size,
                "resample": RESAMPLE.name.lower(),
                "rows": len(frame),
            },
        )
        try:
            os.rename(staging, final)
        except OSError:
            # Another process finished the same cache first; its content is identical by construction.
            if not (final / META_FILE).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_stale(final)
    return ResizedImageCache(final)


def _write_images(path: Path, locations: list[str], size: int, workers: int, progress: str | None) -> None:
    """Decode and resize ``locations`` into a new uint8 ``.npy`` array at ``path`` (closed on return)."""
    images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(len(locations), size, size, 3))

    def fill(position: int) -> None:
        images[position] = load_resized(locations[position], size)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        jobs = pool.map(fill, range(len(locations)))
        for _ in tqdm(jobs, total=len(locations), desc=progress, unit="img", disable=progress is None,
                      **bar_options()):
            pass
    images.flush()


def ensure_cache(
    frame: pd.DataFrame,
    root: str | Path,
    size: int,
    name: str = "all",
    *,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
) -> ResizedImageCache:
    """Open the up-to-date cache of ``frame`` at ``size``, building it first when missing or stale."""
    cache = None if force else open_cache(frame, root, size, name)
    return cache or build_cache(frame, root, size, name, workers=workers, progress=progress)


def _remove_stale(current: Path) -> None:
    """Delete the other caches with ``current``'s name and size (their sources changed)."""
    prefix = current.name[: current.name.rindex("-") + 1]
    for other in current.parent.glob(f"{prefix}*"):
        if other != current and other.is_dir() and not other.name.startswith("."):
            shutil.rmtree(other, ignore_errors=True)
