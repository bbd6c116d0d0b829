"""The bad-input corpus: each broken input gets a problem naming the file or line and the reason.

Each case starts from a clean HAM10000-layout collection and breaks one thing. With on_error="fail"
no manifest is written; with "quarantine" exactly the affected rows are left out and listed.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from _ingest_fixtures import jpeg_bytes, make_ham10000, with_declared_size, write_image, zip_folder

from skinattn.data.ingest import ingest
from skinattn.data.schema import MANIFEST_CSV, read_manifest
from skinattn.errors import DataError

META = "HAM10000_metadata.csv"
# The huge-header case is meant to trip Pillow's warning as well as our guard.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _image(root: Path, image_id: str) -> Path:
    return root / "images" / f"{image_id}.jpg"


def _edit_rows(root: Path, edit: Callable[[list[list[str]]], None]) -> None:
    path = root / META
    with path.open(newline="") as handle:
        table = list(csv.reader(handle))
    edit(table)
    with path.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(table)


def truncated(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    path = _image(root, rows[0]["image_id"])
    data = jpeg_bytes(1, size=64)
    path.write_bytes(data[: len(data) // 2])
    return "bad_image", str(path), "truncated image data"


def zero_bytes(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    path = _image(root, rows[1]["image_id"])
    path.write_bytes(b"")
    return "bad_image", str(path), "empty file (0 bytes)"


def text_named_jpg(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    path = _image(root, rows[2]["image_id"])
    path.write_text("this is not an image\n")
    return "bad_image", str(path), "not a readable image"


def huge_header(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    path = _image(root, rows[3]["image_id"])
    path.write_bytes(with_declared_size(jpeg_bytes(3), 20000, 8000))
    return "bad_image", str(path), "declares 20000×8000 = 160,000,000 pixels, over the guard"


def unknown_label(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    _edit_rows(root, lambda table: table[4].__setitem__(2, "melanoma"))
    return "unknown_label", f"{META}:5", f"{rows[3]['image_id']}: unknown label 'melanoma'; known classes ['akiec'"


def duplicate_id(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    _edit_rows(root, lambda table: table[6].__setitem__(1, rows[0]["image_id"]))
    (_image(root, rows[5]["image_id"])).unlink()  # its row now names another image
    return "duplicate_id", f"{META}:7", f"duplicate image id {rows[0]['image_id']}: first listed on line 2, which is the row kept"


def image_without_row(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    path = write_image(root / "images" / "ISIC_9999999.jpg")
    return "orphan_image", str(path), f"image has no row in {META}"


def row_without_image(root: Path, rows: list[dict[str, str]]) -> tuple[str, str, str]:
    _image(root, rows[4]["image_id"]).unlink()
    return "missing_image", f"{META}:6", f"no image file for {rows[4]['image_id']}"


CASES = [truncated, zero_bytes, text_named_jpg, huge_header, unknown_label, duplicate_id, image_without_row,
         row_without_image]


@pytest.mark.parametrize("break_it", CASES, ids=[case.__name__ for case in CASES])
def test_each_bad_input_fails_with_its_file_and_reason(tmp_path: Path, break_it) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root)
    kind, where, reason = break_it(root, rows)

    result = ingest(str(root), "ham10000", tmp_path / "out", progress=False)

    assert result.status == "failed"
    assert not (tmp_path / "out" / MANIFEST_CSV).exists()
    matching = [p for p in result.problems if p.kind == kind and p.where == where]
    assert matching, [p.line() for p in result.problems]
    assert reason in matching[0].reason
    report = result.report
    assert report["status"] == "failed" and report["problem_counts"][kind] >= 1
    assert f"{where}: " in (tmp_path / "out" / "ingest_report.txt").read_text()


@pytest.mark.parametrize("break_it", CASES, ids=[case.__name__ for case in CASES])
def test_quarantine_leaves_out_exactly_the_bad_rows_and_lists_them(tmp_path: Path, break_it) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root)
    break_it(root, rows)

    result = ingest(str(root), "ham10000", tmp_path / "out", progress=False, on_error="quarantine")

    assert result.status == "quarantined"
    frame, _ = read_manifest(tmp_path / "out")
    quarantined = {p.image_id for p in result.problems if p.row is not None}
    kept_duplicates = {p.image_id for p in result.problems if p.kind == "duplicate_id"}  # the first row stays
    assert set(frame["image_id"]).isdisjoint(quarantined - kept_duplicates)
    assert frame["image_id"].is_unique
    # nothing silently dropped: every row read is either written or listed as quarantined
    assert len(frame) + result.report["rows_quarantined"] == len(rows)
    assert result.report["rows_written"] == len(frame)


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root)
    expected = [case(root, rows)[1] for case in (truncated, zero_bytes, text_named_jpg, image_without_row)]

    result = ingest(str(root), "ham10000", tmp_path / "out", progress=False)

    assert sorted(p.where for p in result.problems) == sorted(expected)


def test_csv_missing_a_column_names_the_file_and_column(tmp_path: Path) -> None:
    root = tmp_path / "src"
    make_ham10000(root)
    _edit_rows(root, lambda table: [row.pop(2) for row in table])  # drop dx

    with pytest.raises(DataError, match=rf"^{META}: missing column\(s\) \['dx'\]; found \['lesion_id', 'image_id'"):
        ingest(str(root), "ham10000", tmp_path / "out", progress=False)


def test_zip_with_parent_entry_is_refused_before_reading(tmp_path: Path) -> None:
    make_ham10000(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "ham.zip", extra={"../outside.jpg": jpeg_bytes()})

    with pytest.raises(DataError, match=r"ham\.zip: unsafe archive entry '\.\./outside\.jpg'"):
        ingest(str(archive), "ham10000", tmp_path / "out", progress=False)
    assert not (tmp_path / "outside.jpg").exists()


def test_bad_member_inside_a_zip_is_named_by_its_zip_location(tmp_path: Path) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root)
    zero_bytes(root, rows)
    archive = zip_folder(root, tmp_path / "ham.zip")

    result = ingest(str(archive), "ham10000", tmp_path / "out", progress=False)

    (problem,) = result.problems
    assert problem.where == f"zip://{archive.resolve()}!images/{rows[1]['image_id']}.jpg"
    assert problem.reason == "empty file (0 bytes)"


def test_quarantine_with_no_usable_row_fails(tmp_path: Path) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root, per_class=1)
    for row in rows:
        _image(root, row["image_id"]).write_bytes(b"")

    result = ingest(str(root), "ham10000", tmp_path / "out", progress=False, on_error="quarantine")

    assert result.status == "failed" and len(result.problems) == len(rows)
    assert not (tmp_path / "out" / MANIFEST_CSV).exists()


def test_decode_in_parallel_finds_the_same_problems_as_serial(tmp_path: Path) -> None:
    root = tmp_path / "src"
    rows = make_ham10000(root, per_class=4)
    truncated(root, rows)
    text_named_jpg(root, rows)

    serial = ingest(str(root), "ham10000", tmp_path / "a", progress=False, workers=1)
    parallel = ingest(str(root), "ham10000", tmp_path / "b", progress=False, workers=4)

    assert [p.to_dict() for p in serial.problems] == [p.to_dict() for p in parallel.problems]
    assert serial.report["images_decoded"] == len(rows)


def test_stale_archive_handle_is_not_reused_after_rewrite(tmp_path: Path) -> None:
    # The zip handle cache is keyed on (path, mtime, size): a rewritten archive must be re-checked.
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ok.jpg", jpeg_bytes())
    from skinattn.storage import list_source

    assert len(list_source(str(archive))) == 1
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("ok.jpg", jpeg_bytes())
        handle.writestr("../bad.jpg", b"x")
    with pytest.raises(DataError, match="unsafe archive entry"):
        list_source(str(archive))


def test_quarantine_keeps_the_first_row_of_a_duplicated_id(tmp_path: Path) -> None:
    """Issue 11: a duplicate used to quarantine the good first row too; now only the repeats go, named."""
    root = tmp_path / "src"
    rows = make_ham10000(root)
    duplicate_id(root, rows)

    result = ingest(str(root), "ham10000", tmp_path / "out", progress=False, on_error="quarantine")

    frame, _ = read_manifest(tmp_path / "out")
    first = frame[frame["image_id"] == rows[0]["image_id"]]
    assert len(first) == 1 and first["label"].iloc[0] == rows[0]["dx"]
    [problem] = [p for p in result.problems if p.kind == "duplicate_id"]
    assert problem.where == f"{META}:7" and "line 2, which is the row kept" in problem.reason
