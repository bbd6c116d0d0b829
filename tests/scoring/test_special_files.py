"""Files that are not regular files are refused by name, never read (issue 11, item 2): a FIFO named .jpg
used to hang ingest and score forever, a link to /dev/zero to read until memory ran out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _scoring_fixtures import make_archive

from skinattn import storage
from skinattn.data.ingest import ingest
from skinattn.data.synthetic import make_sample_dataset
from skinattn.errors import DataError
from skinattn.scoring import ScoreSettings, score_source
from skinattn.scoring.tables import read_table

FAST = ScoreSettings(batch_size=4, workers=0, device="cpu", chunk_size=5, n_bootstrap=0, progress=False)


def _replace_with_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _replace_with_link_to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


@pytest.mark.timeout(120)
def test_ingest_quarantines_a_fifo_and_a_link_out_of_the_folder_by_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_sample_dataset(data, per_class=2, size=16, seed=0)
    images = sorted(data.rglob("*.jpg"))
    _replace_with_fifo(images[0])
    _replace_with_link_to_dev_zero(images[1])

    result = ingest(str(data), "ham10000", tmp_path / "out", progress=False, on_error="quarantine")

    reasons = {p.image_id: p.reason for p in result.problems}
    assert "a named pipe (FIFO), not a regular file; refused" in reasons[images[0].stem]
    assert "a link that resolves outside" in reasons[images[1].stem]
    assert result.report["rows_quarantined"] == 2


def test_a_device_is_refused_by_name_even_through_a_link_inside_the_folder(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    os.symlink("/dev/zero", tmp_path / "dev" / "zero")
    (tmp_path / "zero.jpg").symlink_to(tmp_path / "dev" / "zero")
    with pytest.raises(DataError, match=r"zero\.jpg: a character device, not a regular file; refused"):
        storage.read_bytes(str(tmp_path / "zero.jpg"))


@pytest.mark.timeout(120)
def test_score_reports_a_fifo_as_an_error_row(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    labels = make_archive(folder, 6)
    victim = folder / f"{sorted(labels)[0]}.jpg"
    _replace_with_fifo(victim)

    result = score_source(str(folder), tmp_path / "predictions.csv", str(model_dir), FAST)

    errors = read_table(result.errors)
    assert errors["reason"].str.contains("named pipe").sum() == 1
    assert len(read_table(result.predictions)) == len(labels) - 1


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 1000)
    monkeypatch.setenv("SKINATTN_MAX_FILE_BYTES", "999")
    with pytest.raises(DataError, match=r"big\.jpg: 1,000 bytes, over the limit of 999 for one file"):
        storage.read_bytes(str(big))


def _zip_with_bomb(tmp_path: Path, name: str = "ISIC_9999999.jpg", size: int = 32 * 1024**2) -> tuple[Path, dict]:
    import zipfile

    folder = tmp_path / "archive"
    labels = make_archive(folder, 4)
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, path.relative_to(folder).as_posix())
        handle.writestr(name, b"\0" * size)  # 32 MiB of zeros: about 32 KiB compressed
    return archive, labels


def test_a_zip_bomb_member_is_refused_before_it_is_decompressed(model_dir: Path, tmp_path: Path) -> None:
    archive, labels = _zip_with_bomb(tmp_path)
    location = storage.zip_location(archive, "ISIC_9999999.jpg")
    with pytest.raises(DataError, match=r"ISIC_9999999\.jpg: expands [\d,]+:1 .* over the cap of 100:1"):
        storage.read_bytes(location)

    result = score_source(str(archive), tmp_path / "predictions.csv", str(model_dir), FAST)
    errors = read_table(result.errors)
    assert errors["reason"].str.contains("expands").sum() == 1
    assert len(read_table(result.predictions)) == len(labels)


def test_zip_limits_can_be_set_by_the_user(tmp_path: Path, monkeypatch) -> None:
    archive, _ = _zip_with_bomb(tmp_path, size=2 * 1024**2)
    location = storage.zip_location(archive, "ISIC_9999999.jpg")
    monkeypatch.setenv("SKINATTN_MAX_COMPRESSION_RATIO", "100000")
    assert len(storage.read_bytes(location)) == 2 * 1024**2  # allowed: a genuine, very compressible file
    monkeypatch.setenv("SKINATTN_MAX_FILE_BYTES", str(1024**2))
    with pytest.raises(DataError, match=r"2,097,152 bytes, over the limit of 1,048,576 for one file"):
        storage.read_bytes(location)
    monkeypatch.setenv("SKINATTN_MAX_FILE_BYTES", "lots")
    with pytest.raises(DataError, match=r"SKINATTN_MAX_FILE_BYTES='lots': expected a positive whole number"):
        storage.read_bytes(location)
