"""``storage.fetch_folder``: a folder or S3 prefix copied to local disk under one budget, with the listing
policy (links out of the folder, names escaping the destination) enforced. S3 is moto over HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from skinattn import storage
from skinattn.errors import DataError


def _bucket(endpoint: str, name: str):  # noqa: ANN202 - a boto3 client
    client = boto3.client("s3", endpoint_url=endpoint)
    if name not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=name)
    return client


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_publish_then_fetch_round_trips_through_s3(tmp_path: Path, s3_endpoint: str, s3_env: dict) -> None:
    _bucket(s3_endpoint, "fetch")
    source = tmp_path / "prepared"
    (source / "cache" / "train-48-abc").mkdir(parents=True)
    (source / "manifest.csv").write_text("image_id,label\n")
    (source / "cache" / "train-48-abc" / "images.npy").write_bytes(os.urandom(300_000))
    storage.publish_folder(source, "s3://fetch/run/prepared")
    # A neighbour whose name starts like the prefix must not be copied.
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket="fetch", Key="run/prepared-old/x", Body=b"x")

    written = storage.fetch_folder("s3://fetch/run/prepared", tmp_path / "copy")
    assert _tree(tmp_path / "copy") == _tree(source)
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in written) == sorted(_tree(source))


def test_one_budget_for_the_whole_copy_not_the_per_file_read_budget(tmp_path: Path, s3_endpoint: str, s3_env: dict,
                                                                    monkeypatch) -> None:  # fmt: skip
    """A resize cache is one file far above the per-file read budget; the copy's own budget decides."""
    _bucket(s3_endpoint, "budget-fetch").put_object(Bucket="budget-fetch", Key="p/images.npy", Body=b"x" * 5000)
    monkeypatch.setenv("SKINATTN_MAX_FILE_BYTES", "1000")
    storage.fetch_folder("s3://budget-fetch/p", tmp_path / "ok")
    assert (tmp_path / "ok" / "images.npy").stat().st_size == 5000
    monkeypatch.setenv("SKINATTN_MAX_FETCH_BYTES", "4999")
    with pytest.raises(DataError, match=r"1 files of 5,000 bytes, over the limit of 4,999 .*SKINATTN_MAX_FETCH_BYTES"):
        storage.fetch_folder("s3://budget-fetch/p", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # refused before anything was written


def test_keys_that_would_escape_the_destination_are_refused(tmp_path: Path, s3_endpoint: str, s3_env: dict) -> None:
    client = _bucket(s3_endpoint, "escape")
    client.put_object(Bucket="escape", Key="p/ok.txt", Body=b"ok")
    client.put_object(Bucket="escape", Key="p/../../outside.txt", Body=b"no")
    with pytest.raises(DataError, match=r"would land outside the copy"):
        storage.fetch_folder("s3://escape/p", tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def test_local_folders_links_and_empty_sources(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.bin").write_bytes(b"abc")
    storage.fetch_folder(str(source), tmp_path / "copy")
    assert _tree(tmp_path / "copy") == {"sub/a.bin": b"abc"}

    (tmp_path / "secret.txt").write_text("secret")
    (source / "link.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(DataError, match="resolves outside"):
        storage.fetch_folder(str(source), tmp_path / "copy2")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files found"):
        storage.fetch_folder(str(tmp_path / "empty"), tmp_path / "copy3")
    with pytest.raises(DataError, match="no such folder"):
        storage.fetch_folder(str(tmp_path / "missing"), tmp_path / "copy4")
