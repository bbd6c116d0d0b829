"""The storage layer on both backends: create-once semantics, listing, key checks, errors."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from skinattn.registry import LocalStore, ObjectNotFound, RegistryError, S3Store, open_store


@pytest.fixture
def store(registry_root: str):
    return open_store(registry_root)


def test_put_if_absent_creates_once_and_never_overwrites(store) -> None:
    assert store.put_if_absent("a/b.json", b"first") is True
    assert store.put_if_absent("a/b.json", b"second") is False
    assert store.get("a/b.json") == b"first"
    assert store.exists("a/b.json") and not store.exists("a/c.json")


def test_get_of_a_missing_key_names_it(store) -> None:
    with pytest.raises(ObjectNotFound, match="nothing/here.json"):
        store.get("nothing/here.json")


def test_list_stays_inside_the_folder(store) -> None:
    for key in ("versions/000002.json", "versions/000001.json", "versions2/000001.json", "other.json"):
        store.put_if_absent(key, b"{}")
    assert store.list("versions") == ["versions/000001.json", "versions/000002.json"]
    assert store.list("missing") == []


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a\\b"])
def test_unsafe_keys_are_refused(store, key: str) -> None:
    with pytest.raises(RegistryError, match="invalid registry key"):
        store.put_if_absent(key, b"x")


def test_racing_creators_of_one_key_have_exactly_one_winner(store) -> None:
    payloads = [f"writer {i}".encode() for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda data: store.put_if_absent("race.json", data), payloads))
    assert results.count(True) == 1
    assert store.get("race.json") == payloads[results.index(True)]


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    assert isinstance(open_store("s3://bucket/prefix/"), S3Store)
    assert open_store("s3://bucket/prefix/").uri == "s3://bucket/prefix"
    with pytest.raises(RegistryError, match="unsupported registry root"):
        open_store("gs://bucket/x")


def test_missing_bucket_is_reported_by_name(s3_env: dict[str, str]) -> None:
    store = S3Store("s3://no-such-bucket-here/models")
    with pytest.raises(RegistryError, match="bucket 'no-such-bucket-here' does not exist"):
        store.put_if_absent("versions/000001.json", b"{}")
