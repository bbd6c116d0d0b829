"""Metadata that would be silently corrupted is refused by name instead (issue 11, item 3): bytes that are not
UTF-8 (Latin-1 accents used to become U+FFFD), and an ISIC ``metadata.csv`` that lists an image twice (scoring
used to take the last label)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from _isic_download import make_archive
from skinattn.data.ingest import ingest
from skinattn.data.synthetic import make_sample_dataset
from skinattn.errors import DataError
from skinattn.scoring import list_archive

METADATA = "HAM10000_metadata.csv"


def test_latin1_metadata_is_refused_with_line_and_byte_offset(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_sample_dataset(data, per_class=1, size=16, seed=0)
    table = data / METADATA
    lines = table.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",", b",Z\xfcrich ", 1)  # a Latin-1 u-umlaut inside the third data row
    table.write_bytes(b"\n".join(lines))
    offset = b"\n".join(lines).index(b"\xfc")
    with pytest.raises(DataError, match=rf"{METADATA}:4: byte offset {offset}: 0xfc is not UTF-8 text"):
        ingest(str(data), "ham10000", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_utf8_with_a_bom_still_reads(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_sample_dataset(data, per_class=1, size=16, seed=0)
    table = data / METADATA
    table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
    assert ingest(str(data), "ham10000", tmp_path / "out", progress=False).status == "clean"


def test_scoring_names_an_isic_id_listed_twice(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    make_archive(archive, 4)
    metadata = archive / "metadata.csv"
    rows = list(csv.reader(metadata.open(encoding="utf-8")))
    rows.append([rows[1][0], *rows[2][1:]])  # the first image again, with the second image's diagnosis
    with metadata.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(DataError, match=rf"metadata.csv: isic_id {rows[1][0]} is listed 2 times \(lines 2, 6\)"):
        list_archive(str(archive))
