"""Merging committed chunks or shard outputs into one predictions file, its ISIC layout and one errors file.

Inputs are (predictions, errors) table pairs, concatenated in the order given and streamed: one pair is
in memory at a time, plus the set of ids already written (to prove each image appears once) and the
labelled rows kept for the evaluation; the distribution of the predictions (top-class counts, confidence
histogram) is counted on the way, for the drift report.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from skinattn.errors import DataError
from skinattn.evaluation import isic_layout
from skinattn.evaluation.distribution import PredictionCounts
from skinattn.evaluation.predict import PROB_PREFIX
from skinattn.scoring.outputs import OutputPaths
from skinattn.scoring.tables import ERROR_COLUMNS, MODEL_VERSION, TOP_CLASS, TableWriter, read_table


@dataclasses.dataclass
class MergedOutputs:
    """What the merge wrote, and the rows the evaluation needs."""

    paths: OutputPaths
    class_names: list[str]
    model_versions: list[str]
    scored: int
    errors: int
    labelled: pd.DataFrame  # image_id, label, top_class, prob_<class> of rows with a label
    distribution: PredictionCounts  # top classes and confidences of every scored row


def class_names_of(frame: pd.DataFrame) -> list[str]:
    return [c[len(PROB_PREFIX):] for c in frame.columns if c.startswith(PROB_PREFIX)]


def merge_tables(pairs: Sequence[tuple[Path, Path]], out: str | os.PathLike[str]) -> MergedOutputs:
    """Concatenate (predictions, errors) pairs into the outputs of ``out`` (see :class:`OutputPaths`).

    Raises :class:`DataError` when an image appears twice, when the inputs disagree on their columns or
    were scored by different model versions (a merged file must describe one model).
    """
    paths = OutputPaths.for_out(out)
    if not pairs:
        raise DataError("nothing to merge: no scoring outputs given")
    first = read_table(pairs[0][0])
    names = class_names_of(first)
    if not names:
        raise DataError(f"{pairs[0][0]}: no {PROB_PREFIX}<class> columns; not a scoring output")
    columns = list(first.columns)
    isic_columns = list(isic_layout(first.head(0), names).columns)
    seen: set[str] = set()
    versions: list[str] = []
    labelled: list[pd.DataFrame] = []
    distribution = PredictionCounts.empty(names)
    with (
        TableWriter(paths.predictions, columns) as predictions,
        TableWriter(paths.isic, isic_columns) as isic,
        TableWriter(paths.errors, list(ERROR_COLUMNS)) as errors,
    ):
        for predictions_path, errors_path in pairs:
            part = read_table(predictions_path)
            failed = read_table(errors_path) if errors_path.is_file() else pd.DataFrame(columns=list(ERROR_COLUMNS))
            if list(part.columns) != columns:
                raise DataError(f"{predictions_path}: columns differ from {pairs[0][0]}; cannot merge")
            for image_id in [*part["image_id"], *failed["image_id"]]:
                if image_id in seen:
                    raise DataError(f"image {image_id!r} appears twice (again in {predictions_path}); refusing to merge")
                seen.add(image_id)
            for version in part[MODEL_VERSION].unique():
                if version not in versions:
                    versions.append(version)
            predictions.append(part)
            isic.append(isic_layout(part, names))
            errors.append(failed[list(ERROR_COLUMNS)])
            top = pd.Categorical(part[TOP_CLASS], categories=names).codes
            distribution.add(part[[PROB_PREFIX + n for n in names]].to_numpy(), top if (top >= 0).all() else None)
            has_label = part["label"] != ""
            if has_label.any():
                labelled.append(part.loc[has_label, ["image_id", "label", TOP_CLASS, *(PROB_PREFIX + n for n in names)]])
        if len(versions) > 1:
            raise DataError(f"the outputs were scored by different model versions {versions}; score every shard with one version")
    return MergedOutputs(
        paths=paths,
        class_names=names,
        model_versions=versions,
        scored=predictions.rows,
        errors=errors.rows,
        labelled=pd.concat(labelled, ignore_index=True) if labelled else pd.DataFrame(),
        distribution=distribution,
    )
