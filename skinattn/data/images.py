"""Decoding image bytes into RGB pixels, or a :class:`DataError` that says why not.

The guards: a pixel-count limit checked from the header before any pixel is decoded (decompression bombs),
a full decode so that truncated or corrupt data fails at ingest rather than during training, and a correct
conversion of deep integer images (16-bit greyscale is scaled, not clipped to white).
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from skinattn.errors import DataError
from skinattn.storage import read_bytes

# Larger than any dermoscopy image we know of (ISIC Archive images reach about 6000×4500 = 27 Mpx);
# decoding more than this is refused as a probable decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000


# Integer modes deeper than 8 bits. Pillow's convert("RGB") clips them at 255 instead of scaling, so a 16-bit
# greyscale PNG (dermoscopy exports sometimes are) would silently become an all-white image.
_DEEP_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_rgb(image: Image.Image, name: str) -> Image.Image:
    """``image`` as 8-bit RGB: 16-bit greyscale scaled (0..65535 to 0..255), float images refused by name."""
    if image.mode == "RGB":
        return image
    if image.mode in _DEEP_INTEGER_MODES:
        import numpy as np

        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(f"{name}: {image.mode} image with values outside 0..65535; convert it to 8-bit RGB")
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # rounded, so 65535 -> 255 and 0 -> 0
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        raise DataError(f"{name}: floating-point image (mode F) has no defined value range; convert it to 8-bit RGB")
    return image.convert("RGB")


def decode_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS, *, at_least: int | None = None) -> Image.Image:
    """Fully decode image bytes into an RGB image, or raise :class:`DataError` saying why not.

    The pixel count is checked from the header, before any pixel is decoded, so a small file that
    declares enormous dimensions (a decompression bomb) costs nothing.

    ``at_least``: the caller will shrink the image to this many pixels a side, so a JPEG may be decoded at
    1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling (Pillow's ``draft``) as long as both sides stay at least
    this large. A 6000×4500 ISIC photo for a 299 px model then costs 1/64 of the memory (1.3 MB instead of
    81 MB) and a fraction of the time. Every path that feeds a model passes the model's input size, so
    training (the resize cache) and inference still see identical pixels. Other formats decode in full.
    """
    if not data:
        raise DataError(f"{name}: empty file (0 bytes)")
    try:
        # Pillow itself raises past twice its own limit (~179 Mpx); below that our guard decides.
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise DataError(
                f"{name}: image declares {width}×{height} = {width * height:,} pixels, over the guard of "
                f"{max_pixels:,} (probable decompression bomb; raise --max-pixels if it is genuine)"
            )
        if at_least and image.format == "JPEG":
            image.draft("RGB", (at_least, at_least))
        image.load()  # decodes every pixel: truncated or corrupt data fails here, not during training
        return _to_rgb(image, name)
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(f"{name}: image dimensions are over Pillow's decompression-bomb limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise DataError(f"{name}: not a readable image (the content is not JPEG/PNG/any format Pillow knows)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc)
        if "truncated" in reason.lower():
            raise DataError(f"{name}: truncated image data ({reason})") from exc
        raise DataError(f"{name}: corrupt image data ({reason})") from exc


def open_image(location: str, max_pixels: int = DEFAULT_MAX_PIXELS, *, at_least: int | None = None) -> Image.Image:
    """Read (within the storage layer's byte budget) and fully decode the image at ``location`` as RGB
    (see :func:`decode_image` for ``at_least``)."""
    return decode_image(read_bytes(location), location, max_pixels, at_least=at_least)
