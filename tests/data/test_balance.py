"""Balancing: repeat counts per training image, counts before/after, and the class-weighted sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from skinattn.data.balance import (
    BalanceSpec,
    balance_repeats,
    balance_report,
    balanced_index,
    class_counts,
    expand_index,
    sample_weights,
    weighted_sampler,
)
from skinattn.errors import DataError

CLASSES = ["a", "b", "c", "d"]
# Imbalanced like HAM10000 (one large class, a few rare ones); "d" has no training images at all.
COUNTS = {"a": 50, "b": 7, "c": 3}


@pytest.fixture
def train() -> pd.DataFrame:
    labels = [c for c, n in COUNTS.items() for _ in range(n)]
    return pd.DataFrame({"image_id": [f"I{i:03d}" for i in range(len(labels))], "label": labels})


def test_default_oversamples_every_class_to_the_largest(train: pd.DataFrame) -> None:
    index = balanced_index(train, CLASSES, BalanceSpec())
    epoch = Counter(train.set_index("image_id").loc[expand_index(index), "label"])
    assert epoch == {"a": 50, "b": 50, "c": 50}
    # Repeats are spread evenly: within a class they differ by at most one, and nothing is dropped.
    for cls in COUNTS:
        repeats = index.loc[index["label"] == cls, "repeats"]
        assert repeats.max() - repeats.min() <= 1
        assert repeats.min() >= 1


def test_integer_target_undersamples_larger_classes_unless_told_not_to(train: pd.DataFrame) -> None:
    labels = train["label"]
    repeats = balance_repeats(labels, CLASSES, BalanceSpec(target=20))
    assert {c: int(repeats[labels == c].sum()) for c in COUNTS} == {"a": 20, "b": 20, "c": 20}
    assert (repeats[labels == "a"] == 0).sum() == 30
    kept = balance_repeats(labels, CLASSES, BalanceSpec(target=20, undersample=False))
    assert {c: int(kept[labels == c].sum()) for c in COUNTS} == {"a": 50, "b": 20, "c": 20}


def test_median_target(train: pd.DataFrame) -> None:
    spec = BalanceSpec(target="median")
    assert spec.resolve(class_counts(train["label"], CLASSES)) == 7  # median of 50, 7, 3 (absent d ignored)
    report = balance_report(balanced_index(train, CLASSES, spec), CLASSES, spec)
    assert report["after"] == {"a": 7, "b": 7, "c": 7, "d": 0, "total": 21}
    assert report["before"] == {"a": 50, "b": 7, "c": 3, "d": 0, "total": 60}
    assert report["dropped_by_undersampling"] == 43


def test_balancing_is_seeded(train: pd.DataFrame) -> None:
    labels = train["label"]
    first = balance_repeats(labels, CLASSES, BalanceSpec(target=20, seed=1))
    assert np.array_equal(first, balance_repeats(labels, CLASSES, BalanceSpec(target=20, seed=1)))
    assert not np.array_equal(first, balance_repeats(labels, CLASSES, BalanceSpec(target=20, seed=2)))


def test_bad_targets_and_labels_are_refused(train: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="balance target"):
        BalanceSpec(target="mean")
    with pytest.raises(DataError, match="at least 1"):
        BalanceSpec(target=0)
    with pytest.raises(DataError, match=r"\['zzz'\]"):
        balance_repeats(["a", "zzz"], CLASSES, BalanceSpec())
    with pytest.raises(DataError, match="no images"):
        balance_repeats([], CLASSES, BalanceSpec())


def test_weighted_sampler_draws_classes_equally(train: pd.DataFrame) -> None:
    weights = sample_weights(train["label"], CLASSES)
    assert weights[0].item() == pytest.approx(1 / 50) and weights[-1].item() == pytest.approx(1 / 3)
    sampler = weighted_sampler(train["label"], CLASSES, num_samples=6000, seed=0)
    drawn = Counter(train["label"].iloc[list(sampler)])
    assert sum(drawn.values()) == 6000
    for cls in COUNTS:  # 2000 expected each; 5 standard deviations is about 180
        assert abs(drawn[cls] - 2000) < 200
    assert list(weighted_sampler(train["label"], CLASSES, seed=3)) == list(weighted_sampler(train["label"], CLASSES, seed=3))
