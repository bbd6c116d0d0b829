"""``skinattn ingest`` end to end: exit codes, files written, one line per problem; and the real images."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _ingest_fixtures import make_ham10000, make_isic2017

from skinattn.cli import ingest as ingest_cli
from skinattn.cli import main
from skinattn import storage
from skinattn.data import images
from skinattn.data.readers import READERS
from skinattn.data.readers.isic2017 import TASKS
from skinattn.data.schema import MANIFEST_CSV, MANIFEST_JSON, read_manifest


def test_cli_constants_match_the_library() -> None:
    # The CLI spells these out to stay import-light; they must not drift from the readers.
    assert set(ingest_cli.FORMATS) == set(READERS)
    assert set(ingest_cli.ISIC2017_TASKS) == set(TASKS)
    assert ingest_cli.DEFAULT_MAX_PIXELS == images.DEFAULT_MAX_PIXELS
    assert ingest_cli.DEFAULT_MAX_ARCHIVE_BYTES == storage.DEFAULT_MAX_ARCHIVE_BYTES


def test_clean_collection_exits_zero_and_writes_manifest_and_reports(tmp_path: Path, capsys) -> None:
    rows = make_ham10000(tmp_path / "src")
    out = tmp_path / "out"

    code = main(["ingest", str(tmp_path / "src"), "--format", "ham10000", "--out", str(out), "--no-progress"])

    assert code == 0
    assert f"clean: {len(rows)} rows" in capsys.readouterr().out
    for name in (MANIFEST_CSV, MANIFEST_JSON, "ingest_report.json", "ingest_report.txt"):
        assert (out / name).is_file()
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["status"] == "clean" and report["rows_written"] == len(rows) and report["problems"] == []


def test_problems_exit_nonzero_with_one_line_each_and_no_manifest(tmp_path: Path, capsys) -> None:
    rows = make_ham10000(tmp_path / "src")
    broken = [tmp_path / "src" / "images" / f"{rows[i]['image_id']}.jpg" for i in (0, 3)]
    for path in broken:
        path.write_bytes(b"")
    out = tmp_path / "out"

    code = main(["ingest", str(tmp_path / "src"), "--format", "ham10000", "--out", str(out), "--no-progress"])

    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[:2] == [f"{path}: empty file (0 bytes)" for path in broken]
    assert err[2].startswith("skinattn ingest: error: 2 problem(s)") and "no manifest written" in err[2]
    assert not (out / MANIFEST_CSV).exists()
    assert json.loads((out / "ingest_report.json").read_text())["status"] == "failed"


def test_quarantine_exits_zero_and_still_names_what_it_left_out(tmp_path: Path, capsys) -> None:
    rows = make_ham10000(tmp_path / "src")
    bad = tmp_path / "src" / "images" / f"{rows[0]['image_id']}.jpg"
    bad.write_text("not a jpeg")
    out = tmp_path / "out"

    code = main(["ingest", str(tmp_path / "src"), "--format", "ham10000", "--out", str(out), "--no-progress",
                 "--on-error", "quarantine"])

    captured = capsys.readouterr()
    assert code == 0
    assert f"quarantined: {bad}: not a readable image" in captured.err
    frame, _ = read_manifest(out)
    assert len(frame) == len(rows) - 1


def test_whole_source_error_is_one_line(tmp_path: Path, capsys) -> None:
    code = main(["ingest", str(tmp_path / "nowhere"), "--format", "ham10000", "--out", str(tmp_path / "o")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"skinattn ingest: error: {tmp_path / 'nowhere'}: no such file or folder"


def test_isic2017_task_option(tmp_path: Path) -> None:
    truth = make_isic2017(tmp_path / "src")
    code = main(["ingest", str(tmp_path / "src"), "--format", "isic2017", "--task", "2class", "--out",
                 str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    frame, info = read_manifest(tmp_path / "out")
    assert info.classes == ["nv", "sk"] and len(frame) == sum(1 for v in truth.values() if v != "mel")


# ---- the real HAM10000 images ($SKINATTN_REAL_DATA)


@pytest.mark.real_data
def test_real_ham10000_224_ingests_clean(real_data_dir: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    code = main(["ingest", str(real_data_dir / "ham10000-224"), "--format", "ham10000", "--out", str(tmp_path),
                 "--no-progress"])
    seconds = time.perf_counter() - started

    assert code == 0
    frame, info = read_manifest(tmp_path)
    report = json.loads((tmp_path / "ingest_report.json").read_text())
    assert len(frame) == 5984 and report["status"] == "clean" and report["problems"] == []
    assert report["class_counts"] == {"akiec": 183, "bcc": 264, "bkl": 583, "df": 60, "mel": 491, "nv": 4323,
                                      "vasc": 80}
    assert frame["lesion_id"].is_unique  # the README: one image per lesion in this set
    assert info.classes == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert seconds < 60, f"validating 5,984 small images took {seconds:.1f} s"


@pytest.mark.real_data
def test_real_ham10000_fullsize_sample(real_data_dir: Path, tmp_path: Path) -> None:
    code = main(["ingest", str(real_data_dir / "ham10000-fullsize-sample"), "--format", "ham10000", "--out",
                 str(tmp_path), "--no-progress"])

    assert code == 0
    frame, _ = read_manifest(tmp_path)
    assert len(frame) == 70 and frame["label"].value_counts().to_dict() == {c: 10 for c in sorted(set(frame["label"]))}
    assert images.open_image(frame["image_path"].iloc[0]).size == (600, 450)
