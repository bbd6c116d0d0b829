"""Class balancing of the training split, as an index rather than as copies on disk.

The paper oversamples every training class up to a common count with offline augmentation. Here the
repeats are a column: ``balanced_index`` gives each training image a ``repeats`` count, the training
DataLoader expands it (``expand_index``) and augments each draw online, so a repeated image is a
different picture every time it is seen and nothing extra is written to disk.

Target (``BalanceSpec.target``):
  ``"max"`` (default)  every class up to the largest training class: the paper's behaviour, nothing is
                       dropped. The authors used about 8,000 per class on HAM10000 with no undersampling,
                       i.e. ``BalanceSpec(8000, undersample=False)``.
  ``"median"``         the median class count; classes above it are undersampled.
  an integer           that count per class.
Classes above the target are undersampled to it (rows with ``repeats == 0`` stay in the index, visible)
unless ``undersample=False``, which keeps them whole.

The alternative to repeating images is a class-weighted sampler: ``sample_weights`` /
``weighted_sampler`` draw each class equally often in expectation without changing the index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from skinattn.errors import DataError

if TYPE_CHECKING:  # torch is imported only by the functions that build torch objects.
    import torch
    from torch.utils.data import WeightedRandomSampler

TARGET_NAMES: tuple[str, ...] = ("max", "median")


@dataclasses.dataclass(frozen=True)
class BalanceSpec:
    """Per-class target count for the training split (see the module docstring)."""

    target: int | str = "max"
    undersample: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.target, str) and self.target not in TARGET_NAMES:
            raise DataError(f"balance target must be an integer or one of {list(TARGET_NAMES)}, got {self.target!r}")
        if isinstance(self.target, int) and self.target < 1:
            raise DataError(f"balance target must be at least 1, got {self.target}")

    def resolve(self, counts: dict[str, int]) -> int:
        """The per-class target for these training counts (classes with no images do not count)."""
        present = [n for n in counts.values() if n > 0]
        if not present:
            raise DataError("cannot balance: the training split has no images")
        if self.target == "max":
            return max(present)
        if self.target == "median":
            return int(np.median(present))
        return int(self.target)


def class_counts(labels: Sequence[str] | pd.Series, classes: Sequence[str]) -> dict[str, int]:
    """Images per class, in ``classes`` order, zero for absent classes."""
    found = pd.Series(list(labels), dtype=object).value_counts()
    return {c: int(found.get(c, 0)) for c in classes}


def balance_repeats(labels: Sequence[str] | pd.Series, classes: Sequence[str], spec: BalanceSpec) -> np.ndarray:
    """How often each row appears in one balanced epoch (an int array aligned with ``labels``).

    A class with ``n`` images and target ``T >= n`` repeats every image ``T // n`` times and ``T % n`` of
    them, chosen at random, once more; a class above ``T`` keeps ``T`` images chosen at random.
    """
    labels_arr = np.asarray(list(labels), dtype=object)
    unknown = sorted(set(labels_arr) - set(classes))
    if unknown:
        raise DataError(f"cannot balance: label(s) {unknown} are not among the classes {list(classes)}")
    counts = class_counts(labels_arr, classes)
    target = spec.resolve(counts)
    rng = np.random.default_rng(spec.seed)
    repeats = np.zeros(len(labels_arr), dtype=np.int64)
    for cls in classes:
        rows = np.flatnonzero(labels_arr == cls)
        n = len(rows)
        if n == 0:
            continue
        if n > target and spec.undersample:
            repeats[rng.choice(rows, size=target, replace=False)] = 1
        elif n >= target:
            repeats[rows] = 1
        else:
            repeats[rows] = target // n
            repeats[rng.choice(rows, size=target % n, replace=False)] += 1
    return repeats


def balanced_index(train: pd.DataFrame, classes: Sequence[str], spec: BalanceSpec) -> pd.DataFrame:
    """The balanced training index: ``image_id``, ``label``, ``repeats`` for every training row."""
    repeats = balance_repeats(train["label"], classes, spec)
    return pd.DataFrame(
        {"image_id": train["image_id"].to_numpy(), "label": train["label"].to_numpy(), "repeats": repeats}
    )


def expand_index(index: pd.DataFrame) -> np.ndarray:
    """The image ids of one balanced epoch, each as often as its ``repeats`` says (in index order)."""
    repeats = index["repeats"].to_numpy()
    if (repeats < 0).any():
        raise DataError("balanced index has negative repeat counts")
    return np.repeat(index["image_id"].to_numpy(), repeats)


def balance_report(index: pd.DataFrame, classes: Sequence[str], spec: BalanceSpec) -> dict[str, object]:
    """Counts before and after balancing, for ``counts.json``."""
    before = class_counts(index["label"], classes)
    after = {c: int(index.loc[index["label"] == c, "repeats"].sum()) for c in classes}
    return {
        "target": spec.target,
        "resolved_target": spec.resolve(before),
        "undersample": spec.undersample,
        "seed": spec.seed,
        "before": before | {"total": sum(before.values())},
        "after": after | {"total": sum(after.values())},
        "dropped_by_undersampling": int((index["repeats"] == 0).sum()),
    }


def sample_weights(labels: Sequence[str] | pd.Series, classes: Sequence[str]) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)`` for ``torch.utils.data.WeightedRandomSampler``.

    With these weights every class is drawn equally often in expectation.
    """
    import torch

    labels_list = list(labels)
    counts = class_counts(labels_list, classes)
    unknown = sorted(set(labels_list) - set(classes))
    if unknown:
        raise DataError(f"cannot weight samples: label(s) {unknown} are not among the classes {list(classes)}")
    return torch.tensor([1.0 / counts[label] for label in labels_list], dtype=torch.double)


def weighted_sampler(
    labels: Sequence[str] | pd.Series,
    classes: Sequence[str],
    num_samples: int | None = None,
    seed: int = 0,
) -> WeightedRandomSampler:
    """A class-balanced ``WeightedRandomSampler`` (with replacement) over ``labels``; seeded."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    weights = sample_weights(labels, classes)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        weights, num_samples=num_samples or len(weights), replacement=True, generator=generator
    )
