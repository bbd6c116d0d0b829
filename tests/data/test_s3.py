"""Ingesting from ``s3://bucket/prefix`` over HTTP, against moto's S3 server started on 127.0.0.1.

boto3 reaches the server only through the standard environment variables (AWS_ENDPOINT_URL and the
credentials), exactly as it would reach MinIO or AWS.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from _ingest_fixtures import make_ham10000

from skinattn.data.ingest import ingest
from skinattn.data.schema import read_manifest
from skinattn.data.images import open_image
from skinattn.storage import list_source, read_bytes
from skinattn.errors import DataError


def _upload(folder: Path, bucket: str, prefix: str, endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")


def test_ham10000_ingested_from_s3_over_http(s3_endpoint: str, s3_env: dict, tmp_path: Path) -> None:
    rows = make_ham10000(tmp_path / "src")
    _upload(tmp_path / "src", "derm-data", "ham", s3_endpoint)
    # A sibling prefix that merely starts with the same letters must not leak into the collection.
    make_ham10000(tmp_path / "other", per_class=1)
    _upload(tmp_path / "other", "derm-data", "ham-other", s3_endpoint)

    result = ingest("s3://derm-data/ham", "ham10000", tmp_path / "out", progress=False, workers=4)

    assert result.status == "clean", result.report["problems"]
    frame, info = read_manifest(tmp_path / "out")
    assert info.source == "s3://derm-data/ham" and len(frame) == len(rows)
    first = frame.iloc[0]
    assert first["image_path"] == f"s3://derm-data/ham/images/{first['image_id']}.jpg"
    local = tmp_path / "src" / "images" / f"{first['image_id']}.jpg"
    assert read_bytes(first["image_path"]) == local.read_bytes()
    assert open_image(first["image_path"]).size == (32, 32)


def test_bad_object_is_named_by_its_s3_uri(s3_endpoint: str, s3_env: dict, tmp_path: Path) -> None:
    rows = make_ham10000(tmp_path / "src", per_class=1)
    (tmp_path / "src" / "images" / f"{rows[2]['image_id']}.jpg").write_text("<html>AccessDenied</html>")
    _upload(tmp_path / "src", "derm-bad", "set", s3_endpoint)

    result = ingest("s3://derm-bad/set/", "ham10000", tmp_path / "out", progress=False)

    assert result.status == "failed"
    assert [p.line() for p in result.problems] == [
        f"s3://derm-bad/set/images/{rows[2]['image_id']}.jpg: not a readable image "
        "(the content is not JPEG/PNG/any format Pillow knows)"]


def test_missing_bucket_and_key_are_clear_errors(s3_endpoint: str, s3_env: dict) -> None:
    with pytest.raises(DataError, match=r"s3://no-such-bucket/x: S3 request failed \(NoSuchBucket"):
        list_source("s3://no-such-bucket/x")
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="derm-empty")
    with pytest.raises(DataError, match="s3://derm-empty/prefix: no files found"):
        list_source("s3://derm-empty/prefix")
    with pytest.raises(DataError, match=r"s3://derm-empty/a\.jpg: S3 request failed \(NoSuchKey"):
        read_bytes("s3://derm-empty/a.jpg")


def test_archive_under_an_s3_prefix_is_reported(s3_endpoint: str, s3_env: dict) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="derm-zip")
    client.put_object(Bucket="derm-zip", Key="ham/HAM10000_images_part_1.zip", Body=b"PK")
    with pytest.raises(DataError, match="archives inside an S3 prefix are not read"):
        list_source("s3://derm-zip/ham")
