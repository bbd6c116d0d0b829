"""Listing a source for scoring: ids, labels, skipped files, refused entries, shards."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from _scoring_fixtures import jpeg_bytes, make_archive, zip_folder

from skinattn.errors import DataError
from skinattn.scoring import ShardManifest, list_archive, parse_shard, split_shards, write_shard_manifests
from skinattn.scoring.listing import assign_ids
from skinattn.scoring.shards import check_listing_accounted_for


def test_isic_download_folder_lists_images_with_labels(archive: tuple[Path, dict[str, str]]) -> None:
    folder, labels = archive
    listing = list_archive(str(folder))
    assert [item.image_id for item in listing.items] == sorted(labels)
    assert {item.image_id: item.label for item in listing.items} == labels
    assert sorted(listing.skipped) == ["attribution.txt", "licenses/CC-BY.txt", "metadata.csv"]
    assert listing.labels_file == "metadata.csv" and listing.labelled
    assert not any(item.refusal for item in listing.items)


def test_plain_images_without_metadata_are_unlabelled(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes(1))
    (tmp_path / "b.PNG").write_bytes(jpeg_bytes(2))  # extension case does not matter; content is checked later
    listing = list_archive(str(tmp_path))
    assert [(i.image_id, i.label) for i in listing.items] == [("a", ""), ("b", "")]
    assert not listing.labelled and listing.labels_file is None


def test_unsafe_zip_entry_is_refused_and_the_rest_listed(tmp_path: Path) -> None:
    folder = tmp_path / "download"
    labels = make_archive(folder, 3)
    archive = zip_folder(folder, tmp_path / "a.zip", extra={"../escape.jpg": jpeg_bytes(9), "/etc/abs.jpg": jpeg_bytes(8)})
    listing = list_archive(str(archive))
    refused = {i.file: i.refusal for i in listing.items if i.refusal}
    assert set(refused) == {"../escape.jpg", "/etc/abs.jpg"}
    assert all("entry refused" in reason and "inside the archive" in reason for reason in refused.values())
    assert {i.image_id for i in listing.items if not i.refusal} == set(labels)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg_bytes(3))
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "ok.jpg").write_bytes(jpeg_bytes(4))
    (folder / "link.jpg").symlink_to(outside)
    items = {i.image_id: i for i in list_archive(str(folder)).items}
    assert items["ok"].refusal == ""
    assert "outside" in items["link"].refusal


def test_colliding_stems_get_their_relative_path_as_id() -> None:
    assert assign_ids(["a/x.jpg", "b/x.jpg", "y.jpg"]) == ["a/x.jpg", "b/x.jpg", "y"]


def test_empty_source_and_missing_source_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="no image files to score"):
        list_archive(str(tmp_path))
    with pytest.raises(DataError, match="no such file"):
        list_archive(str(tmp_path / "missing"))


def test_zip_bomb_cap_refuses_the_whole_archive(tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.jpg", b"\0" * 100_000)
    with pytest.raises(DataError, match="over the cap"):
        list_archive(str(archive), max_archive_bytes=50_000)


@pytest.mark.parametrize("total, count", [(12, 5), (3, 4), (10, 1)])
def test_shards_are_contiguous_balanced_and_cover_everything(archive, total: int, count: int, tmp_path: Path) -> None:
    folder = tmp_path / f"s{total}"
    make_archive(folder, total)
    listing = list_archive(str(folder))
    shards = split_shards(listing, count)
    assert [i for shard in shards for i in shard.items] == listing.items
    sizes = [len(s.items) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    paths = write_shard_manifests(listing, count, tmp_path / "manifests")
    assert [ShardManifest.read(p) for p in paths] == shards


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_spec_is_refused(text: str) -> None:
    with pytest.raises(DataError, match="--shard"):
        parse_shard(text)


def test_shard_manifest_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not a skinattn shard manifest"):
        ShardManifest.read(path)


def test_a_merge_must_account_for_every_listed_image() -> None:
    listing = {"listed": 21}
    check_listing_accounted_for(listing, scored=20, errors=1)  # every item scored or in the errors file
    with pytest.raises(DataError, match=r"account for 20 image\(s\) but 21 were listed"):
        check_listing_accounted_for(listing, scored=19, errors=1)
