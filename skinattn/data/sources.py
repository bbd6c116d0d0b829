"""Read-only access to where a collection lives: a local folder, a ``.zip``, or an ``s3://`` prefix.

Every file is named by a *location* string, which is also what a manifest stores in ``image_path``:

- a local path (``/data/ham/ISIC_0024306.jpg``),
- ``zip://<archive path>!<member>`` for a member of a local zip archive,
- ``s3://bucket/key`` for an object, read with boto3 (endpoint, region and credentials come from the
  standard AWS environment variables, including ``AWS_ENDPOINT_URL``, so MinIO works).

:func:`read_bytes` and :func:`open_image` take such a location; :func:`open_source` lists the files of a
whole collection. Archives are checked before anything is read from them: entries with ``..`` or an
absolute path are refused, and so is an archive whose declared uncompressed size exceeds a cap.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from skinattn.errors import DataError

# Larger than any dermoscopy image we know of (ISIC Archive images reach about 6000×4500 = 27 Mpx);
# decoding more than this is refused as a probable decompression bomb.
DEFAULT_MAX_PIXELS = 64_000_000
# Cap on the total declared uncompressed size of one archive (HAM10000's two zips are ~3 GB together).
DEFAULT_MAX_ARCHIVE_BYTES = 64 * 1024**3
# Cap on one file read from a folder or S3 (checked before reading): dermoscopy images and metadata tables are
# tens of MB at most, so anything larger is a mistake or hostile (e.g. a link to a huge file).
DEFAULT_MAX_FILE_BYTES = 256 * 1024**2
# Cap on how much one zip member may expand (uncompressed / compressed size), for members over 1 MiB: JPEG and
# PNG barely compress (ratio ~1) and a CSV table compresses ~5-10x, while a zip bomb's "image" of zeros
# compresses ~1000x.
DEFAULT_MAX_COMPRESSION_RATIO = 100
_RATIO_CHECK_FROM_BYTES = 1024**2


def max_file_bytes() -> int:
    """The per-file read budget: ``$SKINATTN_MAX_FILE_BYTES`` when set, else DEFAULT_MAX_FILE_BYTES."""
    return _env_limit("SKINATTN_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def max_compression_ratio() -> int:
    """``$SKINATTN_MAX_COMPRESSION_RATIO`` when set, else DEFAULT_MAX_COMPRESSION_RATIO."""
    return _env_limit("SKINATTN_MAX_COMPRESSION_RATIO", DEFAULT_MAX_COMPRESSION_RATIO)


def _env_limit(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise DataError(f"environment variable {name}={value!r}: expected a positive whole number")
    return int(value)
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})

ZIP_SCHEME = "zip://"
S3_SCHEME = "s3://"
# Operating-system clutter that is never part of a collection (macOS resource forks, Finder files).
_IGNORED_PARTS = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db"})


@dataclasses.dataclass(frozen=True)
class Entry:
    """One file of a source: its path relative to the source root, its location, its size in bytes."""

    relpath: str
    location: str
    size: int
    refused: str = ""  # why this file must not be read (a link out of the source folder), "" when it may

    @property
    def name(self) -> str:
        return PurePosixPath(self.relpath).name

    @property
    def stem(self) -> str:
        return PurePosixPath(self.relpath).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.relpath).suffix.lower()

    @property
    def is_image(self) -> bool:
        return self.suffix in IMAGE_SUFFIXES

    def read(self) -> bytes:
        if self.refused:
            raise DataError(self.refused)
        return read_bytes(self.location)


def is_clutter(relpath: str) -> bool:
    """Operating-system clutter (macOS resource forks, Finder/Explorer files), never part of a collection."""
    parts = PurePosixPath(relpath).parts
    return any(part in _IGNORED_PARTS for part in parts) or PurePosixPath(relpath).name.startswith("._")


# --------------------------------------------------------------------------------------------------
# Zip archives


def check_member_name(archive: str, name: str) -> None:
    """Refuse an archive entry that would escape the archive root (zip-slip)."""
    normalised = name.replace("\\", "/")
    is_absolute = normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":")
    if is_absolute or ".." in PurePosixPath(normalised).parts:
        raise DataError(
            f"{archive}: unsafe archive entry {name!r}: entries must stay inside the archive "
            "(no '..' components, no absolute paths); refusing to read this archive"
        )


@functools.lru_cache(maxsize=16)
def _open_checked_zip(path: str, mtime_ns: int, size: int) -> tuple[zipfile.ZipFile, int]:
    """Open a zip once per (path, version) after checking every entry name; return it and its total size.

    The handle is shared between threads: zipfile serialises reads of the underlying file itself.
    ``mtime_ns`` and ``size`` are part of the cache key so that a rewritten archive is reopened.
    """
    del mtime_ns, size  # only cache-key material
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip archive ({exc})") from exc
    total = 0
    for info in archive.infolist():
        check_member_name(path, info.filename)
        total += info.file_size
    return archive, total


def open_zip(path: str | os.PathLike[str], max_bytes: int | None = None) -> zipfile.ZipFile:
    """Return a checked, shared, read-only handle on a local zip archive.

    With ``max_bytes``, an archive whose declared uncompressed total is larger is refused. Reading a
    member never yields more than its declared size (zipfile stops there and checks the CRC), so the
    declared total bounds what the archive can ever expand to.
    """
    resolved = str(Path(path).resolve())
    try:
        stat = os.stat(resolved)
    except OSError as exc:
        raise DataError(f"{path}: cannot open archive ({exc.strerror})") from exc
    archive, total = _open_checked_zip(resolved, stat.st_mtime_ns, stat.st_size)
    if max_bytes is not None and total > max_bytes:
        raise DataError(
            f"{path}: archive declares {total:,} bytes uncompressed, over the cap of {max_bytes:,} bytes "
            "(a zip bomb? raise the cap with --max-archive-bytes if it is genuine)"
        )
    return archive


def read_zip_member(archive: zipfile.ZipFile, member: str, location: str) -> bytes:
    """The bytes of one member, within the per-file budget and the compression-ratio cap, both checked on
    the declared sizes before anything is decompressed (zipfile then never yields more than declared).
    Raises KeyError for a missing member, as ZipFile.read does."""
    info = archive.getinfo(member)
    _check_size(location, info.file_size, max_file_bytes())
    ratio = info.file_size / max(info.compress_size, 1)
    limit = max_compression_ratio()
    if info.file_size > _RATIO_CHECK_FROM_BYTES and ratio > limit:
        raise DataError(
            f"{location}: expands {ratio:,.0f}:1 ({info.compress_size:,} to {info.file_size:,} bytes), over the "
            f"cap of {limit}:1 for one member (a zip bomb? set SKINATTN_MAX_COMPRESSION_RATIO if it is genuine)"
        )
    with archive.open(info) as handle:
        return handle.read()


def zip_location(archive: str | os.PathLike[str], member: str) -> str:
    return f"{ZIP_SCHEME}{Path(archive).resolve()}!{member}"


def _split_zip_location(location: str) -> tuple[str, str]:
    body = location[len(ZIP_SCHEME):]
    archive, sep, member = body.rpartition("!")
    if not sep or not archive or not member:
        raise DataError(f"{location}: a zip location must look like zip://<archive path>!<member>")
    return archive, member


def _zip_entries(archive_path: Path, prefix: str, max_bytes: int) -> Iterator[Entry]:
    archive = open_zip(archive_path, max_bytes)
    for info in archive.infolist():
        if info.is_dir() or is_clutter(info.filename):
            continue
        if info.filename.lower().endswith(".zip"):
            raise DataError(
                f"{archive_path}: contains another archive {info.filename!r}; nested archives are not read "
                "(extract the outer archive and ingest the folder)"
            )
        yield Entry(prefix + info.filename, zip_location(archive_path, info.filename), info.file_size)


# --------------------------------------------------------------------------------------------------
# S3


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key); the key may be empty (a whole bucket)."""
    body = uri[len(S3_SCHEME):]
    bucket, _, key = body.partition("/")
    if not bucket:
        raise DataError(f"{uri}: an S3 location must look like s3://bucket/key")
    return bucket, key


_S3_ENV = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
)
_s3_lock = threading.Lock()
_s3_clients: dict[tuple[str | None, ...], object] = {}


def s3_client():  # noqa: ANN201 - botocore's client class is generated at run time
    """A boto3 S3 client configured from the environment, cached per environment (clients are thread-safe).

    ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` point at an S3-compatible server such as MinIO; with a
    custom endpoint, path-style addressing is used because such servers rarely have per-bucket DNS names.
    """
    key = tuple(os.environ.get(name) for name in _S3_ENV)
    with _s3_lock:
        client = _s3_clients.get(key)
        if client is None:
            import boto3  # imported here: only S3 users pay for it
            from botocore.config import Config

            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            config = Config(
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
            )
            client = boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=config)
            _s3_clients[key] = client
        return client


def reset_handles() -> None:
    """Forget the cached S3 clients and open zip handles.

    Registered to run in every forked child (DataLoader workers): a child must not share the parent's
    pooled sockets or zip file offsets, and a lock held by another parent thread at fork time would never
    be released in the child.
    """
    global _s3_lock
    _s3_lock = threading.Lock()
    _s3_clients.clear()
    _open_checked_zip.cache_clear()


os.register_at_fork(after_in_child=reset_handles)


def _s3_error(uri: str, exc: Exception) -> DataError:
    response = getattr(exc, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    reason = f"{code}: {response.get('Error', {}).get('Message', '')}".rstrip(": ") if code else str(exc)
    return DataError(f"{uri}: S3 request failed ({reason})")


def _s3_entries(uri: str) -> Iterator[Entry]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    try:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                relpath = obj["Key"][len(prefix):]
                if not relpath or relpath.endswith("/") or is_clutter(relpath):
                    continue
                if relpath.lower().endswith(".zip"):
                    raise DataError(
                        f"s3://{bucket}/{obj['Key']}: archives inside an S3 prefix are not read "
                        "(upload the extracted files instead)"
                    )
                yield Entry(relpath, f"s3://{bucket}/{obj['Key']}", int(obj["Size"]))
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(uri, exc) from exc


# --------------------------------------------------------------------------------------------------
# Public API


def list_source(location: str, max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES) -> list[Entry]:
    """Every file of a collection, sorted by relative path.

    ``location`` is a folder, a ``.zip`` file or ``s3://bucket/prefix``. Zip archives found inside a
    folder are listed too, their members under ``<archive stem>/`` (HAM10000 ships its images as
    ``HAM10000_images_part_1.zip`` and ``..._part_2.zip`` beside the metadata file).
    """
    if location.startswith(S3_SCHEME):
        entries = list(_s3_entries(location))
    else:
        root = Path(location)
        if root.is_dir():
            entries = list(_folder_entries(root, max_archive_bytes))
        elif root.is_file() and zipfile.is_zipfile(root):
            entries = list(_zip_entries(root, "", max_archive_bytes))
        elif root.exists():
            raise DataError(f"{location}: not a folder, a .zip archive or an s3:// prefix")
        else:
            raise DataError(f"{location}: no such file or folder")
    if not entries:
        raise DataError(f"{location}: no files found")
    return sorted(entries, key=lambda entry: entry.relpath)


def _folder_entries(root: Path, max_archive_bytes: int) -> Iterator[Entry]:
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_PARTS)
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            relpath = path.relative_to(root).as_posix()
            if is_clutter(relpath):
                continue
            if path.suffix.lower() == ".zip":
                stem_prefix = relpath[: -len(".zip")] + "/"
                yield from _zip_entries(path, stem_prefix, max_archive_bytes)
            elif path.is_symlink() and not path.resolve().is_relative_to(root):
                # Links stay inside the source: one out of it could expose any file the process can read.
                yield Entry(relpath, str(path), 0, refused=f"{relpath}: a link that resolves outside {root}; refused")
            else:
                try:
                    size = path.stat().st_size
                except OSError:  # a dangling link: listed, and refused by name when read
                    size = 0
                yield Entry(relpath, str(path), size)


def read_bytes(location: str) -> bytes:
    """The bytes of one file named by a local path, ``zip://archive!member`` or ``s3://bucket/key``."""
    if location.startswith(S3_SCHEME):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = parse_s3_uri(location)
        try:
            response = s3_client().get_object(Bucket=bucket, Key=key)
            _check_size(location, int(response.get("ContentLength") or 0), max_file_bytes())
            return response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(location, exc) from exc
    if location.startswith(ZIP_SCHEME):
        archive_path, member = _split_zip_location(location)
        check_member_name(archive_path, member)
        # The archive's total was capped when the collection was listed; the member's own budget and
        # compression ratio are checked by read_zip_member before anything is decompressed.
        archive = open_zip(archive_path)
        try:
            return read_zip_member(archive, member, location)
        except KeyError as exc:
            raise DataError(f"{location}: no member {member!r} in {archive_path}") from exc
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{location}: corrupt archive member ({exc})") from exc
    return _read_regular_file(location, max_file_bytes())


def _check_size(location: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DataError(f"{location}: {size:,} bytes, over the limit of {max_bytes:,} for one file; refused")


_FILE_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))  # fmt: skip


def _read_regular_file(location: str, max_bytes: int) -> bytes:
    """The bytes of a regular file (a link is followed to one), its size checked before reading.

    Anything else is refused by name: reading a FIFO blocks forever and a link to /dev/zero never ends.
    ``O_NONBLOCK`` keeps the open itself from waiting for a FIFO's writer.
    """
    try:
        fd = os.open(location, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DataError(f"{location}: cannot read ({exc.strerror or exc})") from exc
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(status.st_mode)), "not a regular file")
            raise DataError(f"{location}: {kind}, not a regular file; refused")
        _check_size(location, status.st_size, max_bytes)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise DataError(f"{location}: cannot read ({exc.strerror or exc})") from exc
    _check_size(location, len(data), max_bytes)  # it grew while being read
    return data


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


def decode_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode image bytes into an RGB image, or raise :class:`DataError` saying why not.

    The pixel count is checked from the header, before any pixel is decoded, so a small file that
    declares enormous dimensions (a decompression bomb) costs nothing.
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


def open_image(location: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and fully decode the image at ``location`` (see :func:`read_bytes`) as RGB, with the pixel guard."""
    return decode_image(read_bytes(location), location, max_pixels)
