"""The storage layer's interface on all three kinds of location: budgets, the listing policy, publishing.

S3 is exercised over HTTP against the moto server on 127.0.0.1 (tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import boto3
import pytest

from skinattn import storage
from skinattn.errors import DataError
from skinattn.storage.limits import BoundedReader


def _bucket(endpoint: str, name: str) -> object:
    client = boto3.client("s3", endpoint_url=endpoint)
    if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=name)
    return client


class _Growing(io.RawIOBase):
    """A stream that yields more than its owner declared (a file appended to while it is read)."""

    def __init__(self, total: int) -> None:
        self.left = total

    def read(self, size: int = -1) -> bytes:
        count = self.left if size < 0 else min(size, self.left)
        self.left -= count
        return b"x" * count


def test_a_stream_longer_than_its_budget_is_refused_not_truncated() -> None:
    assert BoundedReader(_Growing(100), "grown.jpg", 100).read() == b"x" * 100
    with pytest.raises(DataError, match=r"grown\.jpg: more than 99 bytes .*refused"):
        BoundedReader(_Growing(100), "grown.jpg", 99).read()


def test_underlying_read_errors_come_out_as_named_data_errors() -> None:
    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("Input/output error")

    with pytest.raises(DataError, match=r"disk\.jpg: cannot read \(Input/output error\)"):
        BoundedReader(Broken(), "disk.jpg", 10).read()


def test_an_explicit_budget_applies_to_folders_zips_and_s3(tmp_path: Path, s3_endpoint: str, s3_env: dict, monkeypatch) -> None:
    payload = os.urandom(5000)  # incompressible: the ratio cap is not what refuses it
    (tmp_path / "a.bin").write_bytes(payload)
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.bin", payload)
    _bucket(s3_endpoint, "budget").put_object(Bucket="budget", Key="a.bin", Body=payload)
    locations = [str(tmp_path / "a.bin"), storage.zip_location(tmp_path / "a.zip", "a.bin"), "s3://budget/a.bin"]
    for location in locations:
        assert storage.read_bytes(location, max_bytes=5000) == payload
        with storage.open_stream(location, max_bytes=5000) as stream:
            assert stream.read(10) == payload[:10]  # a stream, read in pieces
    monkeypatch.setenv("SKINATTN_MAX_FILE_BYTES", "4999")  # the default budget comes from the environment
    for location in locations:
        with pytest.raises(DataError, match="5,000 bytes, over the limit of 4,999 for one file"):
            storage.read_bytes(location)


def test_unsafe_zip_members_refuse_the_archive_strictly_and_one_entry_tolerantly(tmp_path: Path) -> None:
    folder = tmp_path / "collection"
    folder.mkdir()
    with zipfile.ZipFile(folder / "part_1.zip", "w") as archive:
        archive.writestr("ISIC_1.jpg", b"one")
        archive.writestr("../ISIC_2.jpg", b"escape")
        archive.writestr("inner.zip", b"nested")

    with pytest.raises(DataError, match=r"part_1\.zip: unsafe archive entry '\.\./ISIC_2\.jpg'.*refusing to read this archive"):
        storage.list_source(str(folder))

    entries = {e.relpath: e for e in storage.list_source(str(folder), strict=False)}
    assert set(entries) == {"part_1/ISIC_1.jpg", "part_1/../ISIC_2.jpg", "part_1/inner.zip"}
    assert entries["part_1/ISIC_1.jpg"].read() == b"one"
    assert "entry refused" in entries["part_1/../ISIC_2.jpg"].refused
    with pytest.raises(DataError, match="entry refused"):
        entries["part_1/../ISIC_2.jpg"].read()
    # The member name is checked again when a location did not come from a listing.
    with pytest.raises(DataError, match="unsafe archive entry"):
        storage.read_bytes(storage.zip_location(folder / "part_1.zip", "../ISIC_2.jpg"))


def test_a_zip_under_an_s3_prefix_is_refused_strictly_and_listed_tolerantly(s3_endpoint: str, s3_env: dict) -> None:
    client = _bucket(s3_endpoint, "policy")
    client.put_object(Bucket="policy", Key="isic/ISIC_1.jpg", Body=b"one")
    client.put_object(Bucket="policy", Key="isic/more.zip", Body=b"PK")
    with pytest.raises(DataError, match=r"s3://policy/isic/more\.zip: archives inside an S3 prefix are not read"):
        storage.list_source("s3://policy/isic")
    listed = storage.list_source("s3://policy/isic", strict=False)
    assert [(e.relpath, e.size, e.refused) for e in listed] == [("ISIC_1.jpg", 3, ""), ("more.zip", 2, "")]


def test_a_missing_s3_object_is_a_named_error(s3_endpoint: str, s3_env: dict) -> None:
    _bucket(s3_endpoint, "missing")
    with pytest.raises(DataError, match=r"s3://missing/nope\.jpg: S3 request failed \(NoSuchKey"):
        storage.read_bytes("s3://missing/nope.jpg")


def test_publish_folder_to_a_folder_and_to_s3(tmp_path: Path, s3_endpoint: str, s3_env: dict) -> None:
    results = tmp_path / "results"
    (results / "run_eval").mkdir(parents=True)
    (results / "predictions.csv").write_text("image_id,prediction\nISIC_1,NV\n")
    (results / "run_eval" / "metrics.json").write_text("{}")

    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "predictions.csv").write_text("yesterday\n")  # a nightly run refreshes it
    local = storage.publish_folder(results, str(tmp_path / "published"))
    assert (tmp_path / "published" / "predictions.csv").read_text() == (results / "predictions.csv").read_text()
    assert sorted(Path(p).relative_to(tmp_path / "published").as_posix() for p in local) == [
        "predictions.csv", "run_eval/metrics.json"]  # fmt: skip
    assert not list((tmp_path / "published").rglob(".*"))  # no temporary file left behind

    client = _bucket(s3_endpoint, "published")
    remote = storage.publish_folder(results, "s3://published/nightly/")
    assert remote == ["s3://published/nightly/predictions.csv", "s3://published/nightly/run_eval/metrics.json"]
    body = client.get_object(Bucket="published", Key="nightly/predictions.csv")["Body"].read()
    assert body == (results / "predictions.csv").read_bytes()
    # Republishing replaces the files of the same names (a nightly run refreshes one place).
    (results / "predictions.csv").write_text("image_id,prediction\nISIC_1,MEL\n")
    storage.publish_folder(results, "s3://published/nightly")
    assert b"MEL" in client.get_object(Bucket="published", Key="nightly/predictions.csv")["Body"].read()


def test_publishing_to_a_missing_bucket_names_the_file_and_the_reason(tmp_path: Path, s3_env: dict) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    with pytest.raises(DataError, match=r"cannot copy .*summary\.json to s3://no-such-bucket/x/summary\.json: .*NoSuchBucket"):
        storage.publish_folder(tmp_path / "out", "s3://no-such-bucket/x")


def test_the_storage_layer_is_the_only_code_that_opens_zips_or_talks_to_boto3() -> None:
    """One storage layer (issue 11): no second zip reader or S3 client grows back elsewhere in skinattn/."""
    root = Path(storage.__file__).resolve().parents[1]
    offenders = []
    for path in root.rglob("*.py"):
        if path.is_relative_to(root / "storage"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("zipfile.ZipFile(", "import boto3", "from boto3", "from botocore", "import botocore"):
            if needle in text:
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []
