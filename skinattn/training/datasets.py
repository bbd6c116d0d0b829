"""What the training loop reads: the train and val splits of a prepared manifest as torch Datasets.

Images come from the prepare step's resized-image cache (``skinattn.data.cache``) when there is one, else
they are decoded and resized exactly as the cache would have stored them, so both paths feed the network
identical pixels. Training images then go through online augmentation (torchvision transforms v2, on the
uint8 tensor, before scaling and normalising); validation images only through scaling and normalising.

With the balanced index (``data.balance: index``) an image listed with ``repeats = 3`` appears three
times in every epoch, each time with fresh augmentation: the paper's offline oversampling, done online.

The test split is never loaded here: model selection sees validation data only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import v2

from skinattn.data.balance import sample_weights
from skinattn.data.cache import ResizedImageCache, ensure_cache, load_resized, open_cache
from skinattn.data.prepare import CACHE_DIR, read_balanced_index
from skinattn.data.schema import SPLIT_COLUMN, read_manifest
from skinattn.errors import DataError
from skinattn.training.config import AugmentConfig, DataConfig


@dataclasses.dataclass
class PreparedSplits:
    """The train and val rows of a prepared manifest, in manifest order, and the class list."""

    train: pd.DataFrame
    val: pd.DataFrame
    classes: list[str]
    balanced_repeats: np.ndarray  # aligned with ``train``; how often each row appears per balanced epoch


def load_prepared(prepared: str | Path) -> PreparedSplits:
    """Read ``manifest.csv`` and ``train_balanced.csv`` from a folder written by ``skinattn prepare``."""
    folder = Path(prepared)
    if not str(prepared):
        raise DataError("data.prepared is not set: give the folder written by 'skinattn prepare'")
    frame, info = read_manifest(folder)
    if SPLIT_COLUMN not in frame.columns:
        raise DataError(f"{folder}: manifest has no '{SPLIT_COLUMN}' column; run 'skinattn prepare' on it first")
    unlabelled = frame.index[(frame[SPLIT_COLUMN].isin(["train", "val"])) & (frame["label"] == "")]
    if len(unlabelled):
        raise DataError(f"{folder}: row {unlabelled[0] + 2} is in a training split but has no label")
    train = frame[frame[SPLIT_COLUMN] == "train"].reset_index(drop=True)
    val = frame[frame[SPLIT_COLUMN] == "val"].reset_index(drop=True)
    for name, rows in (("train", train), ("val", val)):
        if rows.empty:
            raise DataError(f"{folder}: the {name} split is empty; prepare with a larger data set or other fractions")
    index = read_balanced_index(folder)
    repeats_by_id = dict(zip(index["image_id"], index["repeats"]))
    missing = [i for i in train["image_id"] if i not in repeats_by_id]
    if missing:
        raise DataError(
            f"{folder}: train_balanced.csv does not list training image {missing[0]} "
            f"({len(missing)} missing); run 'skinattn prepare' again"
        )
    repeats = np.array([repeats_by_id[i] for i in train["image_id"]], dtype=np.int64)
    return PreparedSplits(train, val, list(info.classes), repeats)


def train_transform(augment: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Augmentation of a uint8 CHW tensor, then scaling to [0, 1] and normalising."""
    steps: list[v2.Transform] = []
    if augment.enabled:
        if augment.rotation or augment.shift or augment.zoom:
            steps.append(
                v2.RandomAffine(
                    degrees=augment.rotation,
                    translate=(augment.shift, augment.shift) if augment.shift else None,
                    scale=(1 - augment.zoom, 1 + augment.zoom) if augment.zoom else None,
                    interpolation=v2.InterpolationMode.BILINEAR,
                )
            )
        if augment.hflip:
            steps.append(v2.RandomHorizontalFlip())
        if augment.vflip:
            steps.append(v2.RandomVerticalFlip())
        if augment.color_jitter:
            s = augment.color_jitter
            steps.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4)))
    return v2.Compose([*steps, *_to_model_input(mean, std)])


def normalise_transform(mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """Scaling and normalising only (images are already at the model's size)."""
    return v2.Compose(_to_model_input(mean, std))


def _to_model_input(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]


class SplitImages(Dataset):
    """Images of one split at ``size`` px, with their label indices; ``positions`` picks (and repeats) rows.

    The cache is opened lazily in each process, so DataLoader workers map the file themselves instead of
    receiving a pickled copy of it.
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        classes: Sequence[str],
        size: int,
        transform: v2.Transform,
        cache_path: Path | None = None,
        positions: np.ndarray | None = None,
    ) -> None:
        self.image_ids: list[str] = rows["image_id"].tolist()
        self.locations: list[str] = rows["image_path"].tolist()
        lookup = {c: i for i, c in enumerate(classes)}
        self.labels = np.array([lookup[label] for label in rows["label"]], dtype=np.int64)
        self.size = size
        self.transform = transform
        self.cache_path = cache_path
        self.positions = np.arange(len(rows)) if positions is None else np.asarray(positions, dtype=np.int64)
        self._cache: ResizedImageCache | None = None

    @property
    def source(self) -> str:
        """'cache' or 'decode': where the pixels come from."""
        return "cache" if self.cache_path is not None else "decode"

    def __len__(self) -> int:
        return len(self.positions)

    def pixels(self, row: int) -> np.ndarray:
        """The HxWx3 uint8 image of row ``row`` (not of item ``row``)."""
        if self.cache_path is None:
            return load_resized(self.locations[row], self.size)
        if self._cache is None:
            self._cache = ResizedImageCache(self.cache_path)
        return self._cache[row]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        row = int(self.positions[item])
        # A copy: the cache is a read-only memory map, and transforms may write in place.
        image = torch.from_numpy(np.array(self.pixels(row), copy=True)).permute(2, 0, 1)
        return self.transform(image), int(self.labels[row])


def resolve_cache(rows: pd.DataFrame, split: str, size: int, data: DataConfig, progress: bool) -> Path | None:
    """The cache folder of ``rows`` at ``size``: opened, built (``cache: build``) or None."""
    if data.cache == "decode":
        return None
    root = Path(data.cache_dir) if data.cache_dir else Path(data.prepared) / CACHE_DIR
    if data.cache == "auto":
        cache = open_cache(rows, root, size, split)
        return cache.path if cache is not None else None
    return ensure_cache(rows, root, size, split, progress=progress).path


def training_positions(splits: PreparedSplits, balance: str) -> np.ndarray:
    """Row positions of one training epoch: each row ``repeats`` times for ``index``, once otherwise."""
    if balance == "index":
        positions = np.repeat(np.arange(len(splits.train)), splits.balanced_repeats)
        if len(positions) == 0:
            raise DataError("the balanced training index selects no images")
        return positions
    return np.arange(len(splits.train))


class EpochSampler(Sampler[int]):
    """The order of one epoch, a function of (seed, epoch) only, sharded across DDP ranks.

    Shuffles without replacement, or with ``weights`` draws with replacement in proportion to them. Every
    rank computes the same global order and keeps every ``world_size``-th item from ``rank`` on, padded
    by wrapping so all ranks get the same number of items. Because the order depends on nothing but
    (seed, epoch), a resumed run sees exactly the order an uninterrupted run would have.
    """

    def __init__(
        self,
        length: int,
        seed: int,
        *,
        weights: torch.Tensor | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if length < 1:
            raise DataError("cannot sample from an empty training set")
        self.length = length
        self.seed = seed
        self.weights = weights
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.per_rank = -(-length // world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def global_order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, stream=1))
        if self.weights is not None:
            return torch.multinomial(self.weights, self.length, replacement=True, generator=generator)
        return torch.randperm(self.length, generator=generator)

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        total = self.per_rank * self.world_size
        if total > len(order):
            order = torch.cat([order, order[: total - len(order)]])
        return iter(order[self.rank : total : self.world_size].tolist())


def balanced_weights(splits: PreparedSplits) -> torch.Tensor:
    """Per-row weights that draw every class equally often (``data.balance: sampler``)."""
    return sample_weights(splits.train["label"], splits.classes)


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed derived from (seed, epoch, stream); distinct streams never share random numbers."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(2, np.uint64)[0] >> np.uint64(1))
