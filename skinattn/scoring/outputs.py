"""Where a scoring run writes, all derived from ``--out``.

For ``--out run/predictions.csv`` (or ``.parquet``)::

    run/predictions.csv           one row per scored image (see tables.prediction_columns)
    run/predictions_isic.csv      the ISIC challenge layout: image + one upper-case column per class
    run/predictions_errors.csv    file, image_id, reason: every file that was refused or not decodable
    run/predictions_summary.json  counts, model version, source, timings, the drift flag
    run/predictions_drift.json    predictions vs the model's validation reference (skinattn.scoring.drift)
    run/predictions_drift.png     the same as a figure: class shares, confidence histograms
    run/predictions_eval/         the evaluation, when the archive carries labels
    run/predictions.csv.parts/    committed chunks while the run is in progress (removed at the end)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from skinattn.scoring.tables import check_suffix


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    predictions: Path
    isic: Path
    errors: Path
    summary: Path
    drift: Path
    drift_figure: Path
    evaluation: Path
    work: Path

    @classmethod
    def for_out(cls, out: str | os.PathLike[str]) -> OutputPaths:
        path = Path(out)
        check_suffix(path)
        stem = path.with_suffix("")
        return cls(
            predictions=path,
            isic=Path(f"{stem}_isic.csv"),
            errors=Path(f"{stem}_errors.csv"),
            summary=Path(f"{stem}_summary.json"),
            drift=Path(f"{stem}_drift.json"),
            drift_figure=Path(f"{stem}_drift.png"),
            evaluation=Path(f"{stem}_eval"),
            work=Path(f"{path}.parts"),
        )

    @staticmethod
    def errors_beside(predictions: str | os.PathLike[str]) -> Path:
        """The errors file of a predictions file written by a scoring run (e.g. one shard's output)."""
        return OutputPaths.for_out(predictions).errors

    @staticmethod
    def drift_beside(predictions: str | os.PathLike[str]) -> Path:
        """The drift report of a predictions file written by a scoring run (it holds the model's reference)."""
        return OutputPaths.for_out(predictions).drift
