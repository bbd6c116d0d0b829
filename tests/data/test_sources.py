"""Folder and zip sources, locations, archive safety, and the image decoder's guards."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from _ingest_fixtures import jpeg_bytes, with_declared_size, write_image
from PIL import Image

from skinattn.data import images
from skinattn.data.images import decode_image, open_image
from skinattn.storage import list_source, read_bytes, zip_location
from skinattn.errors import DataError


def test_folder_listing_is_sorted_relative_and_skips_clutter(tmp_path: Path) -> None:
    write_image(tmp_path / "b" / "ISIC_2.jpg")
    write_image(tmp_path / "a" / "ISIC_1.jpg")
    (tmp_path / "meta.csv").write_text("x\n")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "junk.jpg").write_bytes(b"x")
    (tmp_path / "a" / "._ISIC_1.jpg").write_bytes(b"resource fork")

    entries = list_source(str(tmp_path))

    assert [e.relpath for e in entries] == ["a/ISIC_1.jpg", "b/ISIC_2.jpg", "meta.csv"]
    assert entries[0].location == str((tmp_path / "a" / "ISIC_1.jpg").resolve())
    assert entries[0].is_image and not entries[2].is_image
    assert read_bytes(entries[2].location) == b"x\n"


def test_zip_inside_folder_is_listed_under_its_stem_and_readable(tmp_path: Path) -> None:
    data = jpeg_bytes(3)
    with zipfile.ZipFile(tmp_path / "part_1.zip", "w") as archive:
        archive.writestr("ISIC_7.jpg", data)

    (entry,) = list_source(str(tmp_path))

    assert entry.relpath == "part_1/ISIC_7.jpg"
    assert entry.location == f"zip://{(tmp_path / 'part_1.zip').resolve()}!ISIC_7.jpg"
    assert read_bytes(entry.location) == data
    assert open_image(entry.location).size == (32, 32)


def test_zip_source_and_missing_member(tmp_path: Path) -> None:
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("imgs/ISIC_1.jpg", jpeg_bytes(1))

    (entry,) = list_source(str(archive))

    assert entry.relpath == "imgs/ISIC_1.jpg"
    with pytest.raises(DataError, match="no member 'imgs/nope.jpg'"):
        read_bytes(zip_location(archive, "imgs/nope.jpg"))


@pytest.mark.parametrize("evil", ["../escape.jpg", "imgs/../../escape.jpg", "/etc/passwd", "C:/windows/x.jpg"])
def test_archive_with_escaping_entry_is_refused(tmp_path: Path, evil: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ok.jpg", jpeg_bytes())
        handle.writestr(evil, b"payload")

    with pytest.raises(DataError, match=r"evil\.zip: unsafe archive entry .*no '\.\.' components"):
        list_source(str(archive))
    # A location that itself climbs out is refused too, before the archive is even opened.
    with pytest.raises(DataError, match="unsafe archive entry"):
        read_bytes(f"zip://{archive}!../escape.jpg")


def test_archive_over_the_uncompressed_cap_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("zeros.bin", b"\0" * 1_000_000)  # compresses to ~1 KB

    assert archive.stat().st_size < 10_000
    with pytest.raises(DataError, match=r"declares 1,000,000 bytes uncompressed, over the cap of 100,000"):
        list_source(str(archive), max_archive_bytes=100_000)
    assert len(list_source(str(archive), max_archive_bytes=2_000_000)) == 1


def test_nested_archive_is_reported_not_skipped(tmp_path: Path) -> None:
    archive = tmp_path / "outer.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("inner.zip", b"PK")
    with pytest.raises(DataError, match="nested archives are not read"):
        list_source(str(archive))


def test_missing_and_unsupported_sources(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        list_source(str(tmp_path / "absent"))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="not a folder, a .zip archive"):
        list_source(str(tmp_path / "notes.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files found"):
        list_source(str(tmp_path / "empty"))


# ---- the decoder


def test_decode_converts_every_mode_to_rgb() -> None:
    for mode in ("L", "CMYK", "RGB"):
        image = decode_image(jpeg_bytes(5, mode=mode), "x.jpg")
        assert image.mode == "RGB" and image.size == (32, 32)


def test_decode_rejects_zero_byte_file() -> None:
    with pytest.raises(DataError, match=r"^a\.jpg: empty file \(0 bytes\)$"):
        decode_image(b"", "a.jpg")


def test_decode_rejects_text_named_jpg() -> None:
    with pytest.raises(DataError, match=r"^a\.jpg: not a readable image"):
        decode_image(b"lesion_id,image_id\nHAM_1,ISIC_1\n", "a.jpg")


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_decode_rejects_truncated_jpeg(keep: float) -> None:
    data = jpeg_bytes(7, size=64)
    assert decode_image(data, "a.jpg").size == (64, 64)
    with pytest.raises(DataError, match=r"^a\.jpg: truncated image data"):
        decode_image(data[: int(len(data) * keep)], "a.jpg")


def test_decode_guard_refuses_huge_header_before_decoding() -> None:
    bomb = with_declared_size(jpeg_bytes(), 9000, 9000)  # 81 Mpx: under Pillow's limit, over ours
    with pytest.raises(DataError, match=r"declares 9000×9000 = 81,000,000 pixels, over the guard of 64,000,000"):
        decode_image(bomb, "bomb.jpg")
    with pytest.raises(DataError, match=r"9000×9000 = 81,000,000 pixels, over the guard of 1,000"):
        decode_image(bomb, "bomb.jpg", max_pixels=1_000)


def test_decode_reports_headers_beyond_pillows_own_limit() -> None:
    bomb = with_declared_size(jpeg_bytes(), 60000, 60000)
    with pytest.raises(DataError, match=r"^bomb\.jpg: image dimensions are over Pillow's decompression-bomb limit"):
        decode_image(bomb, "bomb.jpg")


def test_pixel_guard_default_is_below_pillows_warning_threshold() -> None:
    # Our guard decides before Pillow warns; keeps decode output free of DecompressionBombWarning noise.
    assert images.DEFAULT_MAX_PIXELS < Image.MAX_IMAGE_PIXELS


def test_open_image_on_local_path(tmp_path: Path) -> None:
    path = write_image(tmp_path / "ISIC_1.jpg", seed=2, size=40)
    image = open_image(str(path))
    assert image.size == (40, 40) and image.mode == "RGB"
    with pytest.raises(DataError, match=r"ISIC_2\.jpg: cannot read"):
        open_image(str(tmp_path / "ISIC_2.jpg"))


def _cached_handles(queue) -> None:  # runs in a forked child
    from skinattn.storage import s3, zips

    queue.put((len(s3._clients), zips._cached_handle.cache_info().currsize))


def test_forked_children_do_not_inherit_s3_clients_or_zip_handles(tmp_path, monkeypatch) -> None:
    import multiprocessing
    import zipfile

    from skinattn.storage import s3, zips

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3.client()
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.txt", "x")
    zips.open_archive(archive)
    assert len(s3._clients) >= 1 and zips._cached_handle.cache_info().currsize >= 1
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_cached_handles, args=(queue,))
    child.start()
    child.join(timeout=60)
    assert queue.get(timeout=5) == (0, 0)
