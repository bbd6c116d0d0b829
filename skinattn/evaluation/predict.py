"""Batched inference over one split of a manifest: the predictions table every other evaluation step reads.

The table has one row per image, in manifest order: ``image_id``, ``label`` (the true class),
``prediction`` (the arg-max class) and one ``prob_<class>`` column per model class, in the model's class
order. :func:`isic_layout` rewrites it in the ISIC challenge layout (``image`` + one upper-case column per
class) that the official scorer reads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.schema import SPLIT_COLUMN, SPLITS
from skinattn.data.images import open_image
from skinattn.errors import DataError
from skinattn.models import SoftAttentionNet, eval_transform
from skinattn.models.config import ModelConfig
from skinattn.progress import bar_options

PROB_PREFIX = "prob_"
# The ISIC 2018 Task 3 ground-truth / submission column order for the seven HAM10000 classes.
ISIC2018_COLUMN_ORDER: tuple[str, ...] = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc")


def prob_column(class_name: str) -> str:
    return f"{PROB_PREFIX}{class_name}"


def select_split(frame: pd.DataFrame, split: str | None, source: str = "manifest") -> pd.DataFrame:
    """The labelled rows of ``split`` (all rows when ``split`` is None), refusing what cannot be evaluated.

    Each row keeps a ``manifest_row`` column (its line number in the CSV, header = line 1) so that an
    error later on can name it.
    """
    frame = frame.copy()
    frame["manifest_row"] = np.arange(len(frame)) + 2
    if split is not None:
        if SPLIT_COLUMN not in frame.columns:
            raise DataError(
                f"{source}: no '{SPLIT_COLUMN}' column; run 'skinattn prepare' first, or evaluate all rows without --split"
            )
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
        frame = frame[frame[SPLIT_COLUMN] == split]
        if frame.empty:
            raise DataError(f"{source}: the '{split}' split has no rows")
    unlabelled = frame[frame["label"] == ""]
    if not unlabelled.empty:
        first = unlabelled.iloc[0]
        raise DataError(
            f"{source}: row {first['manifest_row']} (image_id {first['image_id']}) and {len(unlabelled) - 1} other(s) "
            "have no label; evaluation needs the true class of every image"
        )
    return frame.reset_index(drop=True)


def check_labels_known(labels: Sequence[str], class_names: Sequence[str], source: str = "manifest") -> None:
    """Every true label must be a class the model can predict."""
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise DataError(f"{source}: label(s) {unknown} are not classes of this model {list(class_names)}")


@dataclasses.dataclass(frozen=True)
class _Item:
    """What a worker hands back: a tensor, or the reason the image could not be read."""

    index: int
    tensor: torch.Tensor | None
    error: str | None


class ManifestImages(Dataset):
    """The images of some manifest rows, decoded and transformed as the model expects.

    A row whose image cannot be read yields an error message instead of raising inside a worker: the
    main process then raises one :class:`DataError` naming the row and the file, not a worker traceback.
    """

    def __init__(self, rows: pd.DataFrame, config: ModelConfig):
        self.locations = rows["image_path"].tolist()
        self.image_ids = rows["image_id"].tolist()
        self.manifest_rows = rows["manifest_row"].tolist() if "manifest_row" in rows else list(range(2, len(rows) + 2))
        self.transform = eval_transform(config)
        self.input_size = config.input_size

    def __len__(self) -> int:
        return len(self.locations)

    def __getitem__(self, index: int) -> _Item:
        try:
            image = open_image(self.locations[index], at_least=self.input_size)
            return _Item(index, self.transform(image), None)
        except DataError as exc:
            message = f"row {self.manifest_rows[index]} (image_id {self.image_ids[index]}): {exc}"
            return _Item(index, None, message)


def _collate(items: list[_Item]) -> tuple[torch.Tensor | None, list[int], list[str]]:
    errors = [item.error for item in items if item.error is not None]
    if errors:
        return None, [item.index for item in items], errors
    return torch.stack([item.tensor for item in items]), [item.index for item in items], []


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None picks CUDA when visible, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def predict_rows(
    model: SoftAttentionNet,
    rows: pd.DataFrame,
    *,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device | None = "auto",
    source: str = "manifest",
    progress: bool = True,
) -> pd.DataFrame:
    """Class probabilities for every row (needs ``image_id``, ``image_path``, ``label``) as a predictions table;
    the model's temperature is applied (:meth:`SoftAttentionNet.probabilities`)."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    target = resolve_device(device)
    model = model.to(target).eval()
    names = list(model.config.class_names)
    loader = DataLoader(
        ManifestImages(rows, model.config),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=target.type == "cuda",
    )
    probs = np.zeros((len(rows), len(names)), dtype=np.float64)
    for batch, indices, errors in tqdm(loader, desc="predict", unit="batch", disable=not progress, **bar_options()):
        if errors:
            more = f" (and {len(errors) - 1} more in the same batch)" if len(errors) > 1 else ""
            raise DataError(f"{source}: cannot read the image of {errors[0]}{more}")
        logits = model(batch.to(target, non_blocking=True))
        probs[indices] = model.probabilities(logits).cpu().numpy()  # with the model's temperature
    table = pd.DataFrame({"image_id": rows["image_id"].to_numpy(), "label": rows["label"].to_numpy()})
    table["prediction"] = [names[i] for i in probs.argmax(axis=1)]
    for j, name in enumerate(names):
        table[prob_column(name)] = probs[:, j]
    return table


def read_predictions(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A predictions.csv as written by the evaluation: ids and labels as text, exactly as written (an id
    such as ``0042`` stays ``0042``; an empty or ``NA`` label stays a string instead of becoming NaN)."""
    return pd.read_csv(path, dtype={"image_id": str, "label": str, "prediction": str}, keep_default_na=False)


def probabilities(predictions: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """The (N, K) probability matrix of a predictions table, in ``class_names`` order."""
    missing = [prob_column(c) for c in class_names if prob_column(c) not in predictions.columns]
    if missing:
        raise DataError(f"predictions table lacks column(s) {missing}")
    return predictions[[prob_column(c) for c in class_names]].to_numpy(dtype=np.float64)


def label_indices(predictions: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """The true labels of a predictions table as indices into ``class_names``."""
    check_labels_known(predictions["label"].tolist(), class_names, "predictions")
    lookup = {name: i for i, name in enumerate(class_names)}
    return predictions["label"].map(lookup).to_numpy(dtype=np.int64)


def isic_layout(predictions: pd.DataFrame, class_names: Sequence[str]) -> pd.DataFrame:
    """The ISIC challenge submission layout: ``image`` + one upper-case float column per class.

    For the seven HAM10000 classes the columns follow the ISIC 2018 Task 3 order
    (MEL, NV, BCC, AKIEC, BKL, DF, VASC); any other class set keeps the model's order.
    """
    order = list(ISIC2018_COLUMN_ORDER) if set(class_names) == set(HAM10000_CLASSES) else list(class_names)
    table = pd.DataFrame({"image": predictions["image_id"].to_numpy()})
    for name in order:
        table[name.upper()] = predictions[prob_column(name)].to_numpy()
    return table
