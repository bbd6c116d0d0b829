"""Splits: grouped by lesion, stratified, seeded; the paper protocol; clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.splits import SplitSpec, assign_splits, split_counts
from skinattn.data.synthetic import make_sample_dataset
from skinattn.errors import DataError

CLASSES = list(HAM10000_CLASSES)


def frame_from_lesions(lesions: list[tuple[str, int]]) -> pd.DataFrame:
    """A manifest-like frame: one lesion per (label, number of images) pair."""
    rows = []
    for number, (label, n_images) in enumerate(lesions):
        for k in range(n_images):
            image_id = f"ISIC_{number:05d}{k:02d}"
            rows.append({"image_id": image_id, "image_path": f"/x/{image_id}.jpg", "label": label, "lesion_id": f"L{number}"})
    return pd.DataFrame(rows)


def ham_frame(folder: Path, images: str = "") -> pd.DataFrame:
    meta = pd.read_csv(folder / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    return pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "image_path": [str(folder / images / f"{i}.jpg") for i in meta["image_id"]],
            "label": meta["dx"],
            "lesion_id": meta["lesion_id"],
        }
    )


def lesions_in_several_splits(frame: pd.DataFrame, splits: pd.Series) -> list[str]:
    per_lesion = splits.groupby(frame["lesion_id"]).nunique()
    return per_lesion[per_lesion > 1].index.tolist()


@pytest.fixture(scope="module")
def synthetic_frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("synthetic")
    make_sample_dataset(folder, per_class=30, size=32, seed=0)
    return ham_frame(folder)


def test_grouped_split_on_synthetic_data(synthetic_frame: pd.DataFrame) -> None:
    assert synthetic_frame["lesion_id"].duplicated().any()  # the data set has multi-image lesions
    splits = assign_splits(synthetic_frame, SplitSpec(seed=1))
    assert set(splits) == {"train", "val", "test"}
    assert lesions_in_several_splits(synthetic_frame, splits) == []
    shares = splits.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.70, abs=0.07)
    assert shares["val"] == pytest.approx(0.15, abs=0.07)
    assert shares["test"] == pytest.approx(0.15, abs=0.07)
    # Stratified: with 30 images per class, each class reaches train and test.
    counts = split_counts(synthetic_frame, splits, CLASSES)
    assert all(counts["train"][c] > 0 and counts["test"][c] > 0 for c in CLASSES)


def test_split_is_reproducible_and_depends_on_seed(synthetic_frame: pd.DataFrame) -> None:
    first = assign_splits(synthetic_frame, SplitSpec(seed=4))
    assert first.equals(assign_splits(synthetic_frame, SplitSpec(seed=4)))
    assert not first.equals(assign_splits(synthetic_frame, SplitSpec(seed=5)))


@pytest.mark.parametrize(("val", "test"), [(0.1, 0.1), (0.2, 0.1), (0.0, 0.25)])
def test_fractions_are_configurable(val: float, test: float) -> None:
    rng = np.random.default_rng(0)
    frame = frame_from_lesions([(CLASSES[i % 7], int(rng.integers(1, 4))) for i in range(400)])
    splits = assign_splits(frame, SplitSpec(val_fraction=val, test_fraction=test, seed=0))
    shares = splits.value_counts(normalize=True)
    assert shares.get("val", 0.0) == pytest.approx(val, abs=0.03)
    assert shares.get("test", 0.0) == pytest.approx(test, abs=0.03)
    assert lesions_in_several_splits(frame, splits) == []


@settings(max_examples=25, deadline=None)
@given(
    lesions=st.lists(
        st.tuples(st.sampled_from(CLASSES[:4]), st.integers(min_value=1, max_value=4)), min_size=40, max_size=120
    ),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_no_lesion_in_two_splits_property(lesions: list[tuple[str, int]], seed: int) -> None:
    frame = frame_from_lesions(lesions)
    splits = assign_splits(frame, SplitSpec(seed=seed))
    assert splits.notna().all() and set(splits) <= {"train", "val", "test"}
    assert lesions_in_several_splits(frame, splits) == []
    assert splits.equals(assign_splits(frame, SplitSpec(seed=seed)))


def test_paper_protocol_draws_test_and_val_from_single_image_lesions() -> None:
    rng = np.random.default_rng(1)
    lesions = [(CLASSES[i % 7], 1) for i in range(300)] + [(CLASSES[i % 7], int(rng.integers(2, 5))) for i in range(100)]
    frame = frame_from_lesions(lesions)
    splits = assign_splits(frame, SplitSpec(protocol="paper", seed=2))
    images_per_lesion = frame["lesion_id"].map(frame["lesion_id"].value_counts())
    held_out = splits.isin(["val", "test"])
    assert (images_per_lesion[held_out] == 1).all()
    assert (splits[images_per_lesion > 1] == "train").all()
    # 15 % of the single-image pool each, rounded up as scikit-learn does.
    assert (splits == "test").sum() == math.ceil(0.15 * 300)
    assert (splits == "val").sum() == math.ceil(0.15 * 300)
    # Stratified: each class's test share is that of the pool (300 / 7 images each, 45 test images).
    test_counts = frame.loc[splits == "test", "label"].value_counts()
    assert all(abs(test_counts.get(c, 0) - 45 / 7) <= 1 for c in CLASSES)
    assert lesions_in_several_splits(frame, splits) == []


def test_paper_protocol_without_single_image_lesions_is_refused() -> None:
    frame = frame_from_lesions([(CLASSES[i % 7], 2) for i in range(30)])
    with pytest.raises(DataError, match="exactly one image"):
        assign_splits(frame, SplitSpec(protocol="paper"))


def test_unlabelled_row_is_refused_with_its_row_number() -> None:
    frame = frame_from_lesions([(CLASSES[i % 7], 1) for i in range(50)])
    frame.loc[7, "label"] = ""
    with pytest.raises(DataError, match=r"row 9 \(image_id ISIC_0000700\) has an empty 'label'"):
        assign_splits(frame, SplitSpec())


def test_too_few_lesions_and_bad_fractions_are_refused() -> None:
    with pytest.raises(DataError, match="lesion-disjoint folds"):
        assign_splits(frame_from_lesions([("nv", 3)] * 5), SplitSpec())
    with pytest.raises(DataError, match="leave images to train on"):
        SplitSpec(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(DataError, match="unknown split protocol"):
        SplitSpec(protocol="random")


@pytest.mark.real_data
def test_grouped_and_paper_splits_on_real_ham10000_224(real_data_dir: Path) -> None:
    folder = real_data_dir / "ham10000-224"
    frame = ham_frame(folder, "images")
    assert len(frame) == 5984
    grouped = assign_splits(frame, SplitSpec(seed=0))
    assert lesions_in_several_splits(frame, grouped) == []
    counts = split_counts(frame, grouped, CLASSES)
    for cls in CLASSES:  # every class in every split, near its overall 70/15/15 share
        total = sum(counts[s][cls] for s in ("train", "val", "test"))
        assert counts["test"][cls] == pytest.approx(0.15 * total, abs=max(3, 0.03 * total))
        assert counts["val"][cls] > 0

    paper = assign_splits(frame, SplitSpec(protocol="paper", seed=0))
    # Every lesion here has one image, so the pool is the whole set.
    assert (paper == "test").sum() == math.ceil(0.15 * 5984)
    assert lesions_in_several_splits(frame, paper) == []


def test_small_data_sets_get_coarser_folds_not_a_library_error() -> None:
    # 5 single-image lesions per class: fewer images per class than the 20 folds the fractions ask for.
    frame = frame_from_lesions([(label, 1) for label in HAM10000_CLASSES for _ in range(5)])
    splits = assign_splits(frame, SplitSpec(seed=1))
    assert set(splits) == {"train", "val", "test"}
    assert not lesions_in_several_splits(frame, splits)
    with pytest.raises(DataError, match="too few images to split"):
        assign_splits(frame_from_lesions([(label, 1) for label in HAM10000_CLASSES]), SplitSpec())
