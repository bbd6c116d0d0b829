"""The resized-image cache: equal to a direct decode + resize, reused when fresh, rebuilt when stale."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinattn.data.cache import build_cache, ensure_cache, open_cache
from skinattn.data.synthetic import make_sample_dataset
from skinattn.errors import DataError

SIZE = 24


def direct_decode_resize(path: str | Path, size: int) -> np.ndarray:
    """The reference, written independently of the cache: Pillow decode to RGB (a JPEG at the smallest DCT
    scale that keeps both sides at least ``size``) and a bicubic resize."""
    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC))


def frame_of(folder: Path) -> pd.DataFrame:
    meta = pd.read_csv(folder / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    return pd.DataFrame({"image_id": meta["image_id"], "image_path": [str(folder / f"{i}.jpg") for i in meta["image_id"]]})


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    make_sample_dataset(folder, per_class=2, size=48, seed=0)
    return folder


def test_cache_equals_direct_decode_and_resize(images: Path, tmp_path: Path) -> None:
    frame = frame_of(images)
    cache = build_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    assert len(cache) == len(frame) == 14
    assert cache.images.dtype == np.uint8 and cache.images.shape == (14, SIZE, SIZE, 3)
    for position, (image_id, path) in enumerate(zip(frame["image_id"], frame["image_path"])):
        expected = direct_decode_resize(path, SIZE)
        assert np.array_equal(cache[position], expected), image_id
        assert np.array_equal(cache.get(image_id), expected)
    with pytest.raises(DataError, match="not in this cache"):
        cache.get("ISIC_0000000")


def test_fresh_cache_is_reused(images: Path, tmp_path: Path) -> None:
    frame = frame_of(images)
    built = ensure_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    stamp = (built.path / "images.npy").stat().st_mtime_ns
    again = ensure_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    assert again.path == built.path
    assert (again.path / "images.npy").stat().st_mtime_ns == stamp  # opened, not rewritten
    # Another size or another row set is another cache.
    assert open_cache(frame, tmp_path / "cache", SIZE + 8, "train") is None
    assert open_cache(frame.iloc[:5], tmp_path / "cache", SIZE, "train") is None


def test_changed_source_invalidates_the_cache(images: Path, tmp_path: Path) -> None:
    frame = frame_of(images)
    old = ensure_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    old_pixels = np.array(old[3])
    changed = Path(frame["image_path"].iloc[3])
    Image.new("RGB", (48, 48), (10, 200, 30)).save(changed, quality=90)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000))

    assert open_cache(frame, tmp_path / "cache", SIZE, "train") is None
    new = ensure_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    assert new.path != old.path
    assert not old.path.exists()  # the stale cache is removed once the new one is in place
    assert np.array_equal(new[3], direct_decode_resize(changed, SIZE))
    assert not np.array_equal(new[3], old_pixels)


def test_failed_build_leaves_no_cache(images: Path, tmp_path: Path) -> None:
    frame = frame_of(images)
    broken = Path(frame["image_path"].iloc[5])
    broken.write_bytes(broken.read_bytes()[:200])  # a truncated JPEG
    with pytest.raises(DataError, match=broken.name):
        build_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # no final folder and no temporary one

    frame.loc[2, "image_path"] = str(images / "missing.jpg")
    with pytest.raises(DataError, match="missing.jpg"):
        build_cache(frame, tmp_path / "cache", SIZE, "train", progress=False)


@pytest.mark.real_data
def test_cache_of_real_full_size_images(real_data_dir: Path, tmp_path: Path) -> None:
    frame = frame_of(real_data_dir / "ham10000-fullsize-sample").iloc[:10]
    cache = build_cache(frame, tmp_path / "cache", 64, "real", progress=False)
    for position, path in enumerate(frame["image_path"]):
        assert np.array_equal(cache[position], direct_decode_resize(path, 64))
