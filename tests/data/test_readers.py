"""Every reader on a small collection in its own layout, built by the test; ingested end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _ingest_fixtures import (
    ISIC_ARCHIVE_NEW,
    make_ham10000,
    make_ham10000_zipped,
    make_isic2017,
    make_isic2018,
    make_isic2018_dataverse_test,
    make_isic_archive_new,
    make_isic_archive_old,
    zip_folder,
)

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.ingest import ingest
from skinattn.data.readers import READERS, isic_archive
from skinattn.data.schema import read_manifest
from skinattn.storage import list_source
from skinattn.errors import DataError


def _ingest(source: Path, fmt: str, out: Path, **options):
    result = ingest(str(source), fmt, out, progress=False, workers=2, **options)
    assert result.status == "clean", result.report["problems"]
    frame, info = read_manifest(out)
    return frame, info, result


def _labels(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["image_id"], frame["label"], strict=True))


# ---- HAM10000


def test_ham10000_csv_with_images_in_two_folders(tmp_path: Path) -> None:
    rows = make_ham10000(tmp_path / "src", image_folders=("HAM10000_images_part_1", "HAM10000_images_part_2"))

    frame, info, result = _ingest(tmp_path / "src", "ham10000", tmp_path / "out")

    assert info.classes == list(HAM10000_CLASSES) and info.format == "ham10000"
    assert _labels(frame) == {row["image_id"]: row["dx"] for row in rows}
    lesions = dict(zip(frame["image_id"], frame["lesion_id"], strict=True))
    assert lesions == {row["image_id"]: row["lesion_id"] for row in rows}
    # the source's own metadata columns follow the required ones unchanged (blank age stays blank)
    assert list(frame.columns) == ["image_id", "image_path", "label", "lesion_id", "dx", "dx_type", "age", "sex",
                                   "localization"]
    assert (frame["age"] == "").sum() == len(HAM10000_CLASSES)
    assert all(Path(p).is_file() for p in frame["image_path"])
    assert result.report["class_counts"] == {code: 2 for code in HAM10000_CLASSES}
    assert (tmp_path / "out" / "ingest_report.txt").read_text().startswith("ingest CLEAN: ham10000")


def test_ham10000_dataverse_download_tab_separated_without_extension_and_part_zips(tmp_path: Path) -> None:
    rows = make_ham10000_zipped(tmp_path / "src", per_class=3)

    frame, _, _ = _ingest(tmp_path / "src", "ham10000", tmp_path / "out")

    assert _labels(frame) == {row["image_id"]: row["dx"] for row in rows}
    assert all(p.startswith("zip://") and "HAM10000_images_part_" in p for p in frame["image_path"])


def test_ham10000_from_a_single_zip(tmp_path: Path) -> None:
    rows = make_ham10000(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "ham.zip")

    frame, info, _ = _ingest(archive, "ham10000", tmp_path / "out")

    assert len(frame) == len(rows)
    assert info.source == str(archive.resolve())
    assert all(p.startswith(f"zip://{archive.resolve()}!images/") for p in frame["image_path"])


def test_ham10000_missing_metadata_table_is_a_clear_error(tmp_path: Path) -> None:
    make_ham10000(tmp_path / "src")
    (tmp_path / "src" / "HAM10000_metadata.csv").unlink()
    with pytest.raises(DataError, match="no HAM10000 metadata table .* found; name it with --metadata"):
        ingest(str(tmp_path / "src"), "ham10000", tmp_path / "out", progress=False)


def test_explicit_metadata_option_picks_the_table(tmp_path: Path) -> None:
    make_ham10000(tmp_path / "src", metadata_name="labels.tsv", separator="\t")
    frame, info, _ = _ingest(tmp_path / "src", "ham10000", tmp_path / "out", metadata="labels.tsv")
    assert len(frame) == 14 and info.extra["metadata_file"] == "labels.tsv"


# ---- ISIC 2017


def test_isic2017_three_class_ignores_superpixels(tmp_path: Path) -> None:
    truth = make_isic2017(tmp_path / "src")

    frame, info, result = _ingest(tmp_path / "src", "isic2017", tmp_path / "out")

    assert info.classes == ["mel", "nv", "sk"]
    assert _labels(frame) == truth
    assert (frame["lesion_id"] == frame["image_id"]).all()
    assert result.report["images_found"] == len(truth)  # the *_superpixels.png files are not lesion images


def test_isic2017_paper_two_class_task_excludes_and_counts_melanoma(tmp_path: Path) -> None:
    truth = make_isic2017(tmp_path / "src")

    frame, info, result = _ingest(tmp_path / "src", "isic2017", tmp_path / "out", task="2class")

    assert info.classes == ["nv", "sk"] and info.extra["task"] == "2class"
    assert _labels(frame) == {k: v for k, v in truth.items() if v != "mel"}
    melanomas = sum(1 for v in truth.values() if v == "mel")
    assert result.report["rows_excluded"] == melanomas
    assert result.report["excluded_by_reason"] == {"mel is not a class of the 2class task": melanomas}


def test_isic2017_row_with_both_flags_is_a_named_problem(tmp_path: Path) -> None:
    make_isic2017(tmp_path / "src")
    table = tmp_path / "src" / "ISIC-2017_Training_Part3_GroundTruth.csv"
    table.write_text(table.read_text().replace("ISIC_0000003,0.0,0.0", "ISIC_0000003,1.0,1.0"))

    result = ingest(str(tmp_path / "src"), "isic2017", tmp_path / "out", progress=False)

    assert result.status == "failed"
    assert [p.line() for p in result.problems] == [
        "ISIC-2017_Training_Part3_GroundTruth.csv:5: both melanoma and seborrheic_keratosis are 1"]


# ---- ISIC 2018


def test_isic2018_one_hot_ground_truth(tmp_path: Path) -> None:
    truth = make_isic2018(tmp_path / "src")

    frame, info, _ = _ingest(tmp_path / "src", "isic2018", tmp_path / "out")

    assert info.classes == list(HAM10000_CLASSES) and info.extra["ground_truth"] == "one-hot"
    assert _labels(frame) == truth
    assert (frame["lesion_id"] == frame["image_id"]).all()  # no groupings file: one lesion per image


def test_isic2018_lesion_groupings_supply_lesion_ids(tmp_path: Path) -> None:
    truth = make_isic2018(tmp_path / "src", groupings=True)

    frame, _, _ = _ingest(tmp_path / "src", "isic2018", tmp_path / "out")

    expected = {image_id: f"HAM_{i // 2:07d}" for i, image_id in enumerate(truth)}
    assert dict(zip(frame["image_id"], frame["lesion_id"], strict=True)) == expected


def test_isic2018_one_hot_row_with_two_positives_is_a_named_problem(tmp_path: Path) -> None:
    make_isic2018(tmp_path / "src")
    table = tmp_path / "src" / "ISIC2018_Task3_Training_GroundTruth" / "ISIC2018_Task3_Training_GroundTruth.csv"
    lines = table.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",1.0"  # akiec row also marked VASC
    table.write_text("\n".join(lines) + "\n")

    result = ingest(str(tmp_path / "src"), "isic2018", tmp_path / "out", progress=False, on_error="quarantine")

    assert result.status == "quarantined" and result.report["rows_written"] == 6
    (problem,) = result.problems
    assert problem.where.endswith("ISIC2018_Task3_Training_GroundTruth.csv:2")
    assert "2 positive classes ['akiec', 'vasc'], expected exactly 1" in problem.reason


def test_isic2018_dataverse_test_csv_with_dx(tmp_path: Path) -> None:
    rows = make_isic2018_dataverse_test(tmp_path / "src")

    frame, info, _ = _ingest(tmp_path / "src", "isic2018", tmp_path / "out")

    assert info.extra["ground_truth"] == "dx"
    assert _labels(frame) == {row["image_id"]: row["dx"] for row in rows}
    assert frame["lesion_id"].str.startswith("HAMTEST_").all()
    assert set(frame["dataset"]) == {"vidir_modern"}


# ---- ISIC Archive


def test_isic_archive_new_schema_maps_counts_unmapped_and_keeps_unlabelled(tmp_path: Path) -> None:
    rows = make_isic_archive_new(tmp_path / "src", unlabelled=2)

    frame, info, result = _ingest(tmp_path / "src", "isic-archive", tmp_path / "out")

    expected = {row["isic_id"]: label for row, (_, label) in zip(rows, ISIC_ARCHIVE_NEW, strict=False) if label}
    unlabelled = {row["isic_id"]: "" for row in rows[len(ISIC_ARCHIVE_NEW):]}
    assert _labels(frame) == expected | unlabelled
    assert info.classes == list(HAM10000_CLASSES)
    unmapped = sum(1 for _, label in ISIC_ARCHIVE_NEW if not label)
    assert result.report["rows_excluded"] == unmapped
    assert result.report["unlabelled_rows_written"] == 2
    assert "Squamous cell carcinoma, Invasive" in " ".join(result.report["excluded_by_reason"])
    # lesion_id from the metadata where present, else the image id
    lesions = dict(zip(frame["image_id"], frame["lesion_id"], strict=True))
    assert lesions[rows[0]["isic_id"]] == "IL_0000000"
    assert lesions[rows[-1]["isic_id"]] == rows[-1]["isic_id"]


def test_isic_archive_keep_unmapped_keeps_them_unlabelled(tmp_path: Path) -> None:
    rows = make_isic_archive_new(tmp_path / "src", unlabelled=0)

    frame, info, result = _ingest(tmp_path / "src", "isic-archive", tmp_path / "out", keep_unmapped=True)

    assert len(frame) == len(rows) and result.report["rows_excluded"] == 0
    assert info.extra["unmapped_rows"] == sum(1 for _, label in ISIC_ARCHIVE_NEW if not label)


def test_isic_archive_old_schema(tmp_path: Path) -> None:
    rows = make_isic_archive_old(tmp_path / "src")

    frame, _, result = _ingest(tmp_path / "src", "isic-archive", tmp_path / "out")

    mapped = {row["isic_id"]: row["expected"] for row in rows if row["expected"]}
    # a row with only benign_malignant cannot be placed in a class: excluded and counted, never guessed
    assert _labels(frame) == mapped
    reasons = result.report["excluded_by_reason"]
    assert sum(reasons.values()) == len(rows) - len(mapped)
    assert any("benign_malignant=benign only" in reason for reason in reasons)
    assert any("atypical melanocytic proliferation" in reason for reason in reasons)


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"diagnosis_3": "Nevus", "diagnosis_4": "Spitz nevus"}, "nv"),  # falls back to the broader level
        ({"diagnosis_3": "Lichen planus-like keratosis"}, "bkl"),
        ({"diagnosis_2": "Malignant melanocytic proliferations (Melanoma)"}, "mel"),
        ({"diagnosis_3": "Squamous cell carcinoma in situ"}, "akiec"),
        ({"diagnosis_3": "Squamous cell carcinoma, Invasive"}, ""),
        ({"diagnosis_2": "Benign melanocytic proliferations"}, ""),  # too broad to call a nevus
    ],
)
def test_isic_diagnosis_mapping(terms: dict[str, str], expected: str) -> None:
    columns = [f"diagnosis_{level}" for level in range(5, 0, -1)]
    label, unmapped = isic_archive.map_diagnosis(terms, columns)
    assert label == expected
    assert bool(unmapped) == (not expected)


def test_every_format_has_a_reader_that_finds_its_table(tmp_path: Path) -> None:
    builders = {"ham10000": make_ham10000, "isic2017": make_isic2017, "isic2018": make_isic2018,
                "isic-archive": make_isic_archive_new}
    assert set(builders) == set(READERS)
    for fmt, build in builders.items():
        build(tmp_path / fmt)
        collection = READERS[fmt](str(tmp_path / fmt), list_source(str(tmp_path / fmt)))
        assert collection.format == fmt and len(collection.rows) > 0 and collection.images
