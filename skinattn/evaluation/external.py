"""The external test set (issue 14): a collection gathered apart from the training data, evaluated beside
the internal test split to show how far the model's numbers carry to other clinics, cameras and years.

It is read like any collection (``skinattn.data.ingest``: every format, local folder, .zip or s3://) into
``<evaluation>/external/`` (manifest.csv + ingest_report.json), and its images are read at the model's input
size. Only rows whose label is one of the model's classes can be scored; the others are never dropped
silently: :class:`ExternalRows` counts them per label ("excluded: 3 rows with labels sk not among the
model's classes"), next to the rows the format's reader itself kept out (e.g. an ISIC diagnosis that maps
onto no HAM10000 class), and both appear in metrics.json and in the report. No row left is a DataError.

The production gate re-reads the same manifest (:func:`external_metrics`) so that a champion is measured on
exactly the rows the candidate was.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from skinattn.data.schema import MANIFEST_CSV, read_manifest
from skinattn.errors import DataError

if TYPE_CHECKING:
    import torch

    from skinattn.evaluation.report import ExternalView
    from skinattn.evaluation.run import EvaluationSettings
    from skinattn.models.network import SoftAttentionNet

# Sub-folder of an evaluation output that holds the external set's manifest, ingest report and predictions.
EXTERNAL_DIR = "external"
DEFAULT_FORMAT = "isic-archive"
PREDICTIONS_FILE = "predictions.csv"  # inside EXTERNAL_DIR, the layout of the internal predictions.csv
RECALL_FIGURE = "recall_shift.png"  # per-class recall, internal vs external, beside the other figures
# How an unlabelled row (an ISIC download row without diagnosis) is named in the exclusion counts.
NO_LABEL = "(no label)"


@dataclasses.dataclass(frozen=True)
class ExternalTestSet:
    """Where the external collection is and how it is laid out (a ``--format`` of ``skinattn ingest``)."""

    uri: str
    format: str = DEFAULT_FORMAT


@dataclasses.dataclass
class ExternalRows:
    """The rows of an external manifest that can be scored, and what was kept out and why."""

    manifest: Path
    rows: pd.DataFrame  # image_id, image_path, label, manifest_row (line in manifest.csv), in manifest order
    unknown_labels: dict[str, int]  # label → rows not scored because the model has no such class
    reader_excluded: dict[str, int]  # reason → rows the format's reader kept out of the manifest

    @property
    def excluded_rows(self) -> int:
        return sum(self.unknown_labels.values())

    def exclusion_note(self) -> str | None:
        """The sentence the report and metrics.json carry, or None when every row was scored."""
        if not self.unknown_labels:
            return None
        named = {label: count for label, count in self.unknown_labels.items() if label != NO_LABEL}
        parts = []
        if named:
            parts.append(f"{sum(named.values())} rows with labels {', '.join(named)} not among the model's classes")
        if NO_LABEL in self.unknown_labels:
            parts.append(f"{self.unknown_labels[NO_LABEL]} rows without a label")
        return "excluded: " + "; ".join(parts)

    def summary(self) -> dict[str, Any]:
        """The ``excluded`` block of metrics.json's ``external`` section."""
        return {
            "rows": self.excluded_rows,
            "labels": dict(self.unknown_labels),
            "message": self.exclusion_note() or "",
            "by_reader": dict(self.reader_excluded),
        }


def ingest_external(test_set: ExternalTestSet, out_dir: str | Path, *, progress: bool = False) -> Path:
    """Read and validate the collection into ``out_dir`` (manifest.csv, ingest_report.json/.txt); return the
    manifest's path. A collection with any problem is refused, naming the report, as the pipelines' ingest does."""
    from skinattn.data.ingest import REPORT_JSON, ingest

    result = ingest(test_set.uri, test_set.format, out_dir, on_error="fail", progress=progress)
    if not result.ok or result.manifest_path is None:
        first = "; ".join(problem.line() for problem in result.problems[:3])
        more = f" (and {len(result.problems) - 3} more)" if len(result.problems) > 3 else ""
        raise DataError(
            f"external test set {test_set.uri} ({test_set.format}) failed validation: {first}{more}; "
            f"see {Path(out_dir) / REPORT_JSON}"
        )
    return result.manifest_path


def scorable_rows(manifest: str | Path, class_names: Sequence[str]) -> ExternalRows:
    """The rows of ``manifest`` whose label is a class of the model, with every other row counted by label."""
    frame, _info = read_manifest(manifest)
    frame = frame.copy()
    frame["manifest_row"] = range(2, len(frame) + 2)  # header = line 1, as predict's error messages count
    known = frame["label"].isin(list(class_names))
    unknown = Counter(label or NO_LABEL for label in frame.loc[~known, "label"])
    csv_path = Path(manifest) / MANIFEST_CSV if Path(manifest).is_dir() else Path(manifest)
    rows = frame[known].reset_index(drop=True)
    if rows.empty:
        found = ", ".join(f"{label} ({count})" for label, count in sorted(unknown.items())) or "no rows at all"
        raise DataError(
            f"external test set {csv_path}: no row has a label among the model's classes {list(class_names)}; "
            f"found {found}"
        )
    return ExternalRows(csv_path, rows, dict(sorted(unknown.items())), _reader_exclusions(csv_path))


def _reader_exclusions(manifest_csv: Path) -> dict[str, int]:
    """The reader's own exclusions by reason, from the ingest report beside the manifest (empty without one)."""
    from skinattn.data.ingest import REPORT_JSON

    report = manifest_csv.with_name(REPORT_JSON)
    if not report.is_file():
        return {}
    try:
        reasons = json.loads(report.read_text(encoding="utf-8")).get("excluded_by_reason", {})
        return {str(reason): int(count) for reason, count in reasons.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DataError(f"{report}: not an ingest report ({exc})") from None


def load_external(
    test_set: ExternalTestSet, class_names: Sequence[str], out_dir: str | Path, *, progress: bool = False
) -> ExternalRows:
    """Ingest the collection into ``out_dir`` and keep the rows the model can be scored on."""
    return scorable_rows(ingest_external(test_set, out_dir, progress=progress), class_names)


def score_rows(
    model: SoftAttentionNet, external: ExternalRows, settings: EvaluationSettings, device: torch.device | str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Predictions and metrics (the internal evaluation's shape, NaN for undefined) on the scorable rows;
    the exclusion note, if any, opens the metrics' notes."""
    from skinattn.evaluation.metrics import compute_metrics
    from skinattn.evaluation.predict import label_indices, predict_rows, probabilities

    names = list(model.config.class_names)
    source = f"external test set {external.manifest}"
    predictions = predict_rows(model, external.rows, batch_size=settings.batch_size, workers=settings.workers,
                               device=device, source=source, progress=settings.progress)  # fmt: skip
    metrics = compute_metrics(
        label_indices(predictions, names), probabilities(predictions, names), names,
        positive_class=settings.positive_class, threshold=settings.threshold, n_bootstrap=settings.n_bootstrap,
        confidence=settings.confidence, seed=settings.seed, progress=settings.progress,
        temperature=model.temperature,
    )  # fmt: skip
    note = external.exclusion_note()
    metrics["notes"] = ([note] if note else []) + list(metrics["notes"])
    return predictions, metrics


def external_section(
    metrics: dict[str, Any], external: ExternalRows, test_set: ExternalTestSet | None
) -> dict[str, Any]:
    """metrics.json's ``external`` block: where the set came from, how many rows were scored and kept out,
    then the metrics in the same shape as the internal ones."""
    origin = {"source": test_set.uri, "format": test_set.format} if test_set else {"source": str(external.manifest)}
    return origin | {"images": int(len(external.rows)), "excluded": external.summary()} | metrics


@dataclasses.dataclass
class ExternalOutcome:
    """What :func:`evaluate_external` adds to an evaluation: metrics.json's ``external`` and ``shift``
    blocks (NaN for undefined), the report's section, and the lines table.md gains."""

    section: dict[str, Any]
    shift: dict[str, Any]
    view: ExternalView
    markdown: str


def evaluate_external(
    model: SoftAttentionNet,
    test_set: ExternalTestSet,
    out: str | Path,
    settings: EvaluationSettings,
    device: torch.device | str,
    internal: dict[str, Any],
) -> ExternalOutcome:
    """Ingest, score and compare the external set with the ``internal`` metrics. Writes
    ``<out>/external/`` (manifest, ingest report, predictions.csv) and ``<out>/recall_shift.png``."""
    from skinattn.evaluation import figures, tables
    from skinattn.evaluation.report import ExternalView
    from skinattn.evaluation.shift import headline_side_by_side, metric_shift, recall_side_by_side
    from skinattn.fileio import atomic_open

    folder = Path(out) / EXTERNAL_DIR
    external = load_external(test_set, list(model.config.class_names), folder, progress=settings.progress)
    predictions, metrics = score_rows(model, external, settings, device)
    with atomic_open(folder / PREDICTIONS_FILE, newline="") as handle:
        predictions.to_csv(handle, index=False)
    names = list(internal["classes"])
    recall_png = figures.recall_shift_png(names, [internal["per_class"][n]["recall"] for n in names],
                                          [metrics["per_class"][n]["recall"] for n in names])  # fmt: skip
    with atomic_open(Path(out) / RECALL_FIGURE, "wb") as handle:
        handle.write(recall_png)
    shift = metric_shift(internal, metrics)
    headline, recall = headline_side_by_side(internal, metrics, shift), recall_side_by_side(internal, metrics)
    reader_notes = [f"the {test_set.format} reader kept out {count} rows: {reason}"
                    for reason, count in external.reader_excluded.items()]  # fmt: skip
    view = ExternalView(f"{test_set.uri} ({test_set.format})", len(external.rows), headline, recall, recall_png,
                        notes=[*metrics["notes"], *reader_notes])  # fmt: skip
    markdown = (f"\nExternal test set {test_set.uri} ({test_set.format}), {len(external.rows)} images "
                f"(shift = external − internal):\n\n{tables.to_markdown(headline)}\n{tables.to_markdown(recall)}")  # fmt: skip
    return ExternalOutcome(external_section(metrics, external, test_set), shift, view, markdown)


def external_metrics(
    model_dir: str | Path, manifest: str | Path, class_names: Sequence[str], settings: EvaluationSettings
) -> dict[str, Any]:
    """The metrics of the model in ``model_dir`` on the scorable rows of an external manifest (JSON-ready),
    computed without writing anything: the production gate measures the champion with it. ``class_names``
    are the candidate's, so that both are measured on the same rows."""
    from skinattn.evaluation.metrics import to_json_ready
    from skinattn.evaluation.predict import check_labels_known, resolve_device
    from skinattn.models import load_model

    device = resolve_device(settings.device)
    model = load_model(model_dir, map_location=device)
    external = scorable_rows(manifest, class_names)
    check_labels_known(external.rows["label"].tolist(), list(model.config.class_names), str(external.manifest))
    return to_json_ready(score_rows(model, external, settings, device)[1])


__all__ = [
    "DEFAULT_FORMAT", "EXTERNAL_DIR", "ExternalOutcome", "ExternalRows", "ExternalTestSet", "evaluate_external",
    "external_metrics", "external_section", "ingest_external", "load_external", "score_rows", "scorable_rows",
]  # fmt: skip
