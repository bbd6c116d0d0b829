"""Training inputs: prepared splits, cache vs decode, online augmentation, the per-epoch sampler."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from skinattn.data.cache import load_resized
from skinattn.data.schema import read_manifest, write_manifest
from skinattn.errors import DataError
from skinattn.training.config import AugmentConfig, DataConfig
from skinattn.training.datasets import (
    EpochSampler,
    SplitImages,
    normalise_transform,
    load_prepared,
    resolve_cache,
    train_transform,
    training_positions,
)

SIZE = 48
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def test_prepared_splits_hold_train_and_val_only(prepared: Path) -> None:
    splits = load_prepared(prepared)
    frame, _ = read_manifest(prepared)
    assert set(splits.train["image_id"]) == set(frame.loc[frame["split"] == "train", "image_id"])
    assert set(splits.val["image_id"]) == set(frame.loc[frame["split"] == "val", "image_id"])
    test_ids = set(frame.loc[frame["split"] == "test", "image_id"])
    assert test_ids and not test_ids & (set(splits.train["image_id"]) | set(splits.val["image_id"]))


def test_balanced_index_repeats_rows(prepared: Path) -> None:
    splits = load_prepared(prepared)
    positions = training_positions(splits, "index")
    assert len(positions) == splits.balanced_repeats.sum() > len(splits.train)
    counts = pd.Series(splits.train["label"].to_numpy()[positions]).value_counts()
    assert counts.nunique() == 1  # every class equally often in a balanced epoch
    assert (training_positions(splits, "none") == np.arange(len(splits.train))).all()


def test_cache_and_decoding_give_identical_pixels(prepared: Path) -> None:
    splits = load_prepared(prepared)
    data = DataConfig(prepared=str(prepared), cache="auto")
    cache_path = resolve_cache(splits.val, "val", SIZE, data, progress=False)
    assert cache_path is not None
    cached = SplitImages(splits.val, splits.classes, SIZE, normalise_transform(MEAN, STD), cache_path)
    decoded = SplitImages(splits.val, splits.classes, SIZE, normalise_transform(MEAN, STD), None)
    assert (cached.source, decoded.source) == ("cache", "decode")
    for item in (0, len(cached) - 1):
        assert torch.equal(cached[item][0], decoded[item][0])
        assert cached[item][1] == decoded[item][1] == splits.classes.index(splits.val["label"][item])
    np.testing.assert_array_equal(cached.pixels(0), load_resized(splits.val["image_path"][0], SIZE))
    # 'auto' does not build a cache at a size nobody prepared; 'decode' never uses one.
    assert resolve_cache(splits.val, "val", 40, data, progress=False) is None
    assert resolve_cache(splits.val, "val", SIZE, DataConfig(prepared=str(prepared), cache="decode"), False) is None


def test_build_mode_builds_a_missing_cache(prepared: Path, tmp_path: Path) -> None:
    splits = load_prepared(prepared)
    data = DataConfig(prepared=str(prepared), cache="build", cache_dir=str(tmp_path / "cache"))
    path = resolve_cache(splits.val, "val", 32, data, progress=False)
    assert path is not None and path.parent == tmp_path / "cache"
    assert resolve_cache(splits.val, "val", 32, DataConfig(prepared=str(prepared), cache="auto",
                                                           cache_dir=str(tmp_path / "cache")), False) == path


def test_repeats_of_one_image_get_fresh_augmentation(prepared: Path) -> None:
    splits = load_prepared(prepared)
    augmented = SplitImages(splits.train, splits.classes, SIZE, train_transform(AugmentConfig(), MEAN, STD),
                            positions=np.array([0, 0, 0]))
    torch.manual_seed(0)
    images = [augmented[i][0] for i in range(3)]
    assert images[0].shape == (3, SIZE, SIZE) and images[0].dtype == torch.float32
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[1], images[2])
    plain = SplitImages(splits.train, splits.classes, SIZE, train_transform(AugmentConfig(enabled=False), MEAN, STD))
    expected = torch.from_numpy(np.array(load_resized(splits.train["image_path"][0], SIZE), copy=True))
    assert torch.allclose(plain[0][0], (expected.permute(2, 0, 1).float() / 255 - 0.5) / 0.5, atol=1e-6)


def test_epoch_sampler_depends_on_seed_and_epoch_only() -> None:
    sampler = EpochSampler(50, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(first) == list(range(50))
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(2)
    assert list(sampler) != first
    other = EpochSampler(50, seed=3)
    other.set_epoch(1)
    assert list(other) == first


def test_epoch_sampler_shards_cover_the_epoch_once() -> None:
    shards = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=0, rank=rank, world_size=3)
        sampler.set_epoch(5)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1]) == 4
    merged = [i for shard in shards for i in shard]
    assert set(merged) == set(range(10)) and len(merged) == 12  # padded by wrapping two items


def test_weighted_sampler_draws_classes_evenly() -> None:
    labels = torch.tensor([0] * 90 + [1] * 10)
    weights = torch.where(labels == 0, 1 / 90, 1 / 10).double()
    sampler = EpochSampler(100, seed=0, weights=weights)
    drawn = []
    for epoch in range(20):
        sampler.set_epoch(epoch)
        drawn += list(sampler)
    share_of_minority = (labels[drawn] == 1).float().mean().item()
    assert 0.42 < share_of_minority < 0.58


def test_unprepared_manifest_is_refused(prepared: Path, tmp_path: Path) -> None:
    frame, info = read_manifest(prepared)
    write_manifest(frame.drop(columns=["split"]), info, tmp_path / "raw")
    with pytest.raises(DataError, match="no 'split' column; run 'skinattn prepare'"):
        load_prepared(tmp_path / "raw")
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy, ignore=shutil.ignore_patterns("cache"))
    (copy / "train_balanced.csv").unlink()
    with pytest.raises(DataError, match="no balanced training index"):
        load_prepared(copy)
