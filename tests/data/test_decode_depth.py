"""Images deeper than 8 bits decode to what they show, not to white (issue 11, item 3). ``decode_image`` is the
one decoder of ingest, scoring and the endpoint."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from skinattn.data.images import decode_image
from skinattn.errors import DataError


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_16_bit_greyscale_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    data = _png(ramp)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # what Pillow hands over: a deep integer mode
    rgb = np.asarray(decode_image(data, "deep.png"))
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    expected = np.round(ramp / 257).astype(np.int64)
    assert np.abs(rgb[..., 0].astype(np.int64) - expected).max() <= 1
    assert rgb.min() == 0 and rgb.max() == 255 and (rgb == 255).mean() < 0.01  # not all white


def test_8_bit_images_are_unchanged():
    pixels = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(decode_image(_png(pixels), "rgb.png")), pixels)
    grey = pixels[..., 0]
    assert np.array_equal(np.asarray(decode_image(_png(grey), "grey.png"))[..., 1], grey)


def test_float_images_are_refused_by_name():
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), mode="F").save(buffer, format="TIFF")
    with pytest.raises(DataError, match=r"float\.tiff: floating-point image \(mode F\)"):
        decode_image(buffer.getvalue(), "float.tiff")
