"""JPEGs that only feed a model are decoded at a reduced DCT scale (issue 11, item 4), the same way on every
path, so training (the resize cache) and inference (scoring, evaluation) still see identical pixels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from skinattn.data.cache import load_resized
from skinattn.data.images import decode_image, open_image
from skinattn.errors import DataError
from skinattn.models import create_model
from skinattn.scoring.dataset import ScoreImages
from skinattn.scoring.listing import ScoreItem


def _photo(width: int, height: int, fmt: str = "JPEG") -> bytes:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 40, width // 40, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)  # smooth, photo-like
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=90)
    return buffer.getvalue()


def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_keeps_the_requested_size() -> None:
    data = _photo(2400, 1800)
    assert decode_image(data, "big.jpg").size == (2400, 1800)  # no target: the full image
    reduced = decode_image(data, "big.jpg", at_least=224)
    assert reduced.mode == "RGB" and reduced.size == (300, 225)  # 1/8: the largest step keeping both sides >= 224
    assert decode_image(data, "big.jpg", at_least=600).size == (1200, 900)  # 1/2: 1/4 would leave 450 < 600
    assert decode_image(data, "big.jpg", at_least=2000).size == (2400, 1800)  # no step keeps 2000: full size


def test_formats_without_dct_scaling_decode_in_full() -> None:
    assert decode_image(_photo(800, 600, "PNG"), "big.png", at_least=100).size == (800, 600)


def test_a_truncated_jpeg_is_still_refused_when_decoded_at_a_reduced_scale() -> None:
    data = _photo(2400, 1800)
    with pytest.raises(DataError, match=r"cut\.jpg: truncated image data"):
        decode_image(data[: len(data) // 2], "cut.jpg", at_least=64)


def test_scoring_feeds_the_model_the_pixels_the_training_cache_stores(tmp_path: Path) -> None:
    path = tmp_path / "ISIC_0000001.jpg"
    path.write_bytes(_photo(1600, 1200))
    config = create_model("resnet10t", img_size=64).config
    loaded = ScoreImages([ScoreItem("ISIC_0000001", path.name, str(path))], config)[0]
    assert loaded.error is None
    cached = torch.from_numpy(load_resized(str(path), 64).copy()).permute(2, 0, 1).float() / 255
    mean, std = torch.tensor(config.mean).view(3, 1, 1), torch.tensor(config.std).view(3, 1, 1)
    assert torch.allclose(loaded.tensor, (cached - mean) / std, atol=1e-6)
    # ...and those pixels come from the reduced decode (1600x1200 -> 200x150 for 64 px), not the full one.
    full = np.asarray(open_image(str(path)).resize((64, 64), Image.Resampling.BICUBIC))
    assert not np.array_equal(load_resized(str(path), 64), full)
