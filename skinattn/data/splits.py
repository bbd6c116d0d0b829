"""Train / val / test splits that never put one lesion in two splits.

Two protocols:

``grouped`` (default)
    Stratified by label and grouped by lesion_id with scikit-learn's ``StratifiedGroupKFold``. The rows
    are cut into ``n`` stratified, lesion-disjoint folds (``n`` the smallest number up to 20 in which the
    requested fractions are whole numbers of folds, else 20) and whole folds are handed to test, val and
    train. Fractions are therefore met to within one fold (5 %) and per class as closely as lesion
    sizes allow.

``paper``
    The authors' protocol (Datta et al.; see docs/data.md): the test set is drawn only from lesions that
    have exactly one image, ``test_fraction`` (0.15) of those images, stratified by label; every other
    image trains. Because this project never early-stops on test, a validation set is drawn the same way
    (``val_fraction`` of the single-image pool, stratified) from what the test draw left over. The
    authors used their test set as validation set; that choice cannot be reproduced without leaking test
    into model selection, and is deliberately not offered.

Both are deterministic for a given seed and row order.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from skinattn.data.schema import SPLITS
from skinattn.errors import DataError

PROTOCOLS: tuple[str, ...] = ("grouped", "paper")
MAX_FOLDS = 20


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """How to split. ``val_fraction``/``test_fraction`` are fractions of all images for ``grouped`` and of
    the images of single-image lesions for ``paper``; train gets the rest."""

    protocol: str = "grouped"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise DataError(f"unknown split protocol {self.protocol!r}; choose one of {list(PROTOCOLS)}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise DataError(f"{name} must be in [0, 1), got {value}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise DataError(
                f"val_fraction + test_fraction must leave images to train on, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )


def assign_splits(frame: pd.DataFrame, spec: SplitSpec) -> pd.Series:
    """Return a Series (same index as ``frame``) of 'train' / 'val' / 'test' for each row.

    ``frame`` needs the manifest columns ``label`` and ``lesion_id``; every row must be labelled.
    """
    _check_rows(frame)
    labels = frame["label"].to_numpy()
    groups = frame["lesion_id"].to_numpy()
    if spec.protocol == "paper":
        splits = _paper_split(labels, groups, spec)
    else:
        splits = _grouped_split(labels, groups, spec)
    return pd.Series(splits, index=frame.index, name="split")


def split_counts(frame: pd.DataFrame, splits: pd.Series, classes: list[str]) -> dict[str, dict[str, int]]:
    """Images per class in each split: ``{split: {class: n, ..., 'total': n}}``."""
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        labels = frame.loc[splits == split, "label"]
        per_class = labels.value_counts()
        counts[split] = {c: int(per_class.get(c, 0)) for c in classes} | {"total": len(labels)}
    return counts


def _check_rows(frame: pd.DataFrame) -> None:
    for column in ("label", "lesion_id"):
        if column not in frame.columns:
            raise DataError(f"cannot split: the manifest has no {column!r} column")
        empty = frame[column].fillna("").astype(str).str.strip() == ""
        if empty.any():
            first = int(np.flatnonzero(empty.to_numpy())[0])
            image_id = frame["image_id"].iloc[first] if "image_id" in frame.columns else "?"
            raise DataError(
                f"cannot split: manifest row {first + 2} (image_id {image_id}) has an empty {column!r}; "
                f"{int(empty.sum())} row(s) in all. Splits need every image labelled and grouped"
            )
    if len(frame) == 0:
        raise DataError("cannot split an empty manifest")


def _folds_for(fractions: tuple[float, ...]) -> int:
    """Smallest fold count (2..MAX_FOLDS) in which every fraction is a whole number of folds."""
    for n in range(2, MAX_FOLDS + 1):
        if all(abs(f * n - round(f * n)) < 1e-6 for f in fractions):
            return n
    return MAX_FOLDS


def _fold_plan(n_folds: int, spec: SplitSpec) -> tuple[int, int, int]:
    """(folds, test folds, val folds): a requested non-zero split gets a fold, and train keeps one."""
    n_test = max(round(spec.test_fraction * n_folds), 1) if spec.test_fraction > 0 else 0
    n_val = max(round(spec.val_fraction * n_folds), 1) if spec.val_fraction > 0 else 0
    return max(n_folds, n_test + n_val + 1), n_test, n_val


def _grouped_split(labels: np.ndarray, groups: np.ndarray, spec: SplitSpec) -> np.ndarray:
    n_folds, n_test, n_val = _fold_plan(_folds_for((spec.val_fraction, spec.test_fraction)), spec)
    largest_class = int(np.unique(labels, return_counts=True)[1].max())
    if largest_class < n_folds:
        # scikit-learn needs some class with at least one image per fold: with few images, use coarser
        # folds (the fractions are then met less exactly; prepare prints the counts).
        n_folds, n_test, n_val = _fold_plan(largest_class, spec)
        if largest_class < n_folds:
            raise DataError(
                f"too few images to split: the largest class has {largest_class}, and val {spec.val_fraction} "
                f"+ test {spec.test_fraction} + train need at least {n_folds} lesion-disjoint folds"
            )
    n_lesions = len(set(groups))
    if n_lesions < n_folds:
        raise DataError(
            f"cannot split {n_lesions} lesion(s) into {n_folds} lesion-disjoint folds "
            f"(val {spec.val_fraction}, test {spec.test_fraction}); need at least {n_folds} lesions"
        )
    fold_roles = ["test"] * n_test + ["val"] * n_val + ["train"] * (n_folds - n_test - n_val)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=spec.seed)
    splits = np.empty(len(labels), dtype=object)
    with warnings.catch_warnings():
        # Rare classes with fewer lesions than folds are expected (df, vasc in small sets); the per-split
        # counts that prepare prints show where they went.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for role, (_, fold_rows) in zip(fold_roles, splitter.split(np.zeros(len(labels)), labels, groups)):
            splits[fold_rows] = role
    return splits


def _paper_split(labels: np.ndarray, groups: np.ndarray, spec: SplitSpec) -> np.ndarray:
    lesion_sizes = pd.Series(groups).map(pd.Series(groups).value_counts()).to_numpy()
    pool = np.flatnonzero(lesion_sizes == 1)
    splits = np.full(len(labels), "train", dtype=object)
    if len(pool) == 0:
        raise DataError("paper protocol: no lesion has exactly one image, so there is nothing to draw test from")
    n_test = math.ceil(spec.test_fraction * len(pool))
    n_val = math.ceil(spec.val_fraction * len(pool))
    test_rows = _stratified_draw(pool, labels, n_test, spec.seed, "test")
    splits[test_rows] = "test"
    if n_val:
        remaining = np.setdiff1d(pool, test_rows)
        val_rows = _stratified_draw(remaining, labels, n_val, spec.seed + 1, "val")
        splits[val_rows] = "val"
    return splits


def _stratified_draw(pool: np.ndarray, labels: np.ndarray, n: int, seed: int, role: str) -> np.ndarray:
    """``n`` rows of ``pool`` drawn at random, stratified by label."""
    if n == 0:
        return pool[:0]
    if n >= len(pool):
        raise DataError(
            f"paper protocol: the {role} draw needs {n} of {len(pool)} remaining single-image lesions; "
            f"lower the {role} fraction"
        )
    try:
        _, drawn = train_test_split(pool, test_size=n, stratify=labels[pool], random_state=seed)
    except ValueError as exc:
        # sklearn refuses when a class has a single member or there are fewer rows than classes.
        per_class = pd.Series(labels[pool]).value_counts().to_dict()
        raise DataError(
            f"paper protocol: cannot draw a stratified {role} set of {n} from the single-image lesions "
            f"{per_class}: {exc}"
        ) from exc
    return np.sort(drawn)
