"""Checking one uploaded image before it reaches the model: type, pixel count, decodability.

Every refusal is an :class:`UploadRejected` carrying the HTTP status to answer with and a message meant
for the caller (no stack trace, nothing about the server's internals).
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from skinattn.data.images import decode_image
from skinattn.errors import DataError

# The formats /classify accepts, recognised by their first bytes rather than by the client's label:
# browsers and curl often send application/octet-stream, and a label proves nothing about the content.
_SIGNATURES: dict[str, bytes] = {
    "JPEG": b"\xff\xd8\xff",
    "PNG": b"\x89PNG\r\n\x1a\n",
}

UPLOAD_NAME = "uploaded image"


class UploadRejected(Exception):
    """An upload the service refuses; ``status`` is the HTTP status code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sniff_format(data: bytes) -> str | None:
    """``"JPEG"`` or ``"PNG"`` from the leading bytes, else None."""
    for name, signature in _SIGNATURES.items():
        if data.startswith(signature):
            return name
    return None


def upload_pixels(data: bytes, max_bytes: int, max_pixels: int, at_least: int | None = None) -> int:
    """The pixels decoding an uploaded JPEG/PNG will hold, from its header alone (nothing is decoded).

    The declared size is checked against ``max_pixels``. With ``at_least`` (the model's input size) a JPEG
    will be decoded at a reduced DCT scale (see ``skinattn.data.images.decode_image``), so it costs only the
    reduced size: that is what the endpoint's decode budget is charged.

    Raises:
        UploadRejected: 413 for too many bytes or pixels, 415 for a format other than JPEG/PNG,
            400 for an empty file or a corrupt header.
    """
    if len(data) > max_bytes:  # the ASGI guard stops large bodies earlier; this covers direct callers
        raise UploadRejected(413, f"{UPLOAD_NAME} is {len(data):,} bytes, over the limit of {max_bytes:,} bytes")
    if not data:
        raise UploadRejected(400, f"{UPLOAD_NAME} is empty (0 bytes)")
    kind = sniff_format(data)
    if kind is None:
        raise UploadRejected(
            415, f"{UPLOAD_NAME} is not a JPEG or PNG file (it starts with bytes {data[:8].hex(' ')}); send a JPEG or PNG"
        )
    # Read the declared size from the header alone, so that a decompression bomb is refused with 413
    # before a single pixel is decoded (decode_image checks again; its DataError then means bad data).
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(400, f"{UPLOAD_NAME}: corrupt {kind} header ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise UploadRejected(413, f"{UPLOAD_NAME}: image dimensions are far too large ({exc})") from exc
    if width * height > max_pixels:
        raise UploadRejected(
            413, f"{UPLOAD_NAME} is {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,} pixels"
        )
    if at_least and image.format == "JPEG":
        image.draft("RGB", (at_least, at_least))  # only chooses the scale (and so the size); decodes nothing
        width, height = image.size
    return width * height


def read_upload(data: bytes, max_bytes: int, max_pixels: int, at_least: int | None = None) -> Image.Image:
    """Validate (:func:`upload_pixels`) and fully decode one uploaded JPEG/PNG into an RGB image (a JPEG at
    the reduced scale that keeps both sides at least ``at_least`` when given).

    Raises:
        UploadRejected: as :func:`upload_pixels`, and 400 for a truncated or corrupt file.
    """
    upload_pixels(data, max_bytes, max_pixels, at_least)
    return decode_upload(data, max_pixels, at_least)


def decode_upload(data: bytes, max_pixels: int, at_least: int | None = None) -> Image.Image:
    """Decode an upload that :func:`upload_pixels` has accepted into an RGB image (see :func:`read_upload`).

    Raises:
        UploadRejected: 400 for a truncated or corrupt file.
    """
    try:
        return decode_image(data, UPLOAD_NAME, max_pixels=max_pixels, at_least=at_least)
    except DataError as exc:
        raise UploadRejected(400, str(exc)) from exc
