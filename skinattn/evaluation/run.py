"""``evaluate``: a saved model on one split of a manifest, to metrics, paper tables, figures and a report.

Everything lands in one output folder, each file written to a temporary name and renamed into place:

    metrics.json           every metric (see metrics.py), the run's settings and notes
    table.csv, table.md    paper Table 1/2 layout (plus Table 4 in table.md for a binary view)
    table_binary.csv       paper Table 4 layout, only with a binary view
    predictions.csv        image_id, label, prediction, prob_<class>...
    predictions_isic.csv   the ISIC challenge layout: image + one upper-case column per class
    confusion_matrix.png, roc.png
    reliability.png        reliability diagrams at T = 1 and with the model's temperature (metrics.json "calibration")
    subgroups.png          balanced accuracy by sex, age band and site, only when the manifest has such metadata
    recall_shift.png       per-class recall, internal vs external test set, only with an external test set
    external/              the external test set's manifest, ingest report and predictions.csv (only with one)
    training_curves.png    per-epoch loss and validation metrics, only when the model's history.jsonl is found
    overlays/              <image_id>_input.png, _attention.png (SA models), _gradcam.png, _panel.png
    MODEL_CARD.md          the model card (skinattn.model_card): intended use, data, metrics with CIs, subgroups,
    model_card.json        calibration, limitations; the same fields as JSON
    report.html            self-contained: everything above that is a picture or a table, embedded
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from skinattn.data.schema import read_manifest
from skinattn.data.images import open_image
from skinattn.errors import DataError
from skinattn.evaluation import figures, subgroup_figure, tables
from skinattn.evaluation.card import write_model_card
from skinattn.evaluation.external import ExternalTestSet, evaluate_external
from skinattn.evaluation.explain import Explainer, Explanation, display_image, side_by_side
from skinattn.evaluation.history import HISTORY_FILE, find_history, read_history
from skinattn.evaluation.metrics import compute_metrics, to_json_ready
from skinattn.evaluation.predict import (
    check_labels_known,
    isic_layout,
    label_indices,
    predict_rows,
    probabilities,
    resolve_device,
    select_split,
)
from skinattn.evaluation.provenance import run_provenance
from skinattn.evaluation.report import ExampleRow, render_report
from skinattn.evaluation.subgroups import subgroup_metrics
from skinattn.fileio import atomic_open, atomic_path, write_json
from skinattn.models import describe_calibration, load_model, read_card
from skinattn.models.network import SoftAttentionNet

OVERLAY_DIR = "overlays"


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """Everything ``evaluate`` can be told besides its inputs."""

    split: str | None = "test"
    batch_size: int = 32
    workers: int = 0
    device: str = "auto"
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    threshold: float = 0.5
    positive_class: str | None = None
    explain_per_class: int = 2
    progress: bool = True


def _write_png(path: Path, image: Image.Image) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_open(path, newline="") as handle:
        frame.to_csv(handle, index=False)


def pick_examples(rows: pd.DataFrame, per_class: int) -> pd.DataFrame:
    """The first ``per_class`` rows of each true class, in manifest order (deterministic)."""
    if per_class <= 0:
        return rows.iloc[0:0]
    return rows.groupby("label", sort=False, group_keys=False).head(per_class)


def save_explanation(explanation: Explanation, out_dir: Path, stem: str) -> dict[str, Path]:
    """Write the input, overlays and side-by-side panel of one explanation as PNGs; return their paths."""
    shown = display_image(explanation.image)
    images = {"input": shown, "gradcam": explanation.gradcam_overlay(shown)}
    attention = explanation.attention_overlay(shown)
    if attention is not None:
        images["attention"] = attention
    panel_order = [images[k] for k in ("input", "attention", "gradcam") if k in images]
    images["panel"] = side_by_side(panel_order)
    paths = {}
    for kind, image in images.items():
        paths[kind] = out_dir / f"{stem}_{kind}.png"
        _write_png(paths[kind], image)
    return paths


@dataclasses.dataclass
class _Measured:
    """A model's predictions on the selected rows and the metrics computed from them."""

    model: SoftAttentionNet
    rows: pd.DataFrame
    predictions: pd.DataFrame
    y_true: np.ndarray
    y_prob: np.ndarray
    metrics: dict[str, Any]
    device: Any


def _measure(model_dir: str | Path, manifest: str | Path, settings: EvaluationSettings) -> _Measured:
    device = resolve_device(settings.device)
    model: SoftAttentionNet = load_model(model_dir, map_location=device)
    names = list(model.config.class_names)
    frame, _info = read_manifest(manifest)
    rows = select_split(frame, settings.split, source=str(manifest))
    check_labels_known(rows["label"].tolist(), names, source=str(manifest))
    predictions = predict_rows(
        model, rows, batch_size=settings.batch_size, workers=settings.workers, device=device,
        source=str(manifest), progress=settings.progress,
    )  # fmt: skip
    y_true, y_prob = label_indices(predictions, names), probabilities(predictions, names)
    metrics = compute_metrics(
        y_true, y_prob, names,
        positive_class=settings.positive_class, threshold=settings.threshold, n_bootstrap=settings.n_bootstrap,
        confidence=settings.confidence, seed=settings.seed, progress=settings.progress,
        temperature=model.temperature,
    )  # fmt: skip
    return _Measured(model, rows, predictions, y_true, y_prob, metrics, device)


def evaluation_metrics(
    model_dir: str | Path, manifest: str | Path, settings: EvaluationSettings | None = None
) -> dict[str, Any]:
    """The metrics :func:`evaluate` would write to ``metrics.json`` (JSON-ready, without its ``run`` block),
    computed without writing anything: no predictions files, figures, overlays or report. For callers that
    only compare numbers, such as the production gate."""
    return to_json_ready(_measure(model_dir, manifest, settings or EvaluationSettings()).metrics)


def evaluate(
    model_dir: str | Path,
    manifest: str | Path,
    out: str | Path,
    settings: EvaluationSettings | None = None,
    *,
    external: ExternalTestSet | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation; return the metrics dict that was written to ``metrics.json``.

    ``external``: a collection gathered apart from the training data, evaluated too and shown beside the
    internal split (metrics.json ``external`` and ``shift``, a report section; see skinattn.evaluation.external)."""
    settings = settings or EvaluationSettings()
    out = Path(out)
    measured = _measure(model_dir, manifest, settings)
    model, rows, predictions, metrics, device = (
        measured.model, measured.rows, measured.predictions, measured.metrics, measured.device
    )
    y_true, y_prob = measured.y_true, measured.y_prob
    card = read_card(model_dir)
    names = list(model.config.class_names)
    # Per sex, age band and anatomical site where the manifest has those columns (skinattn.evaluation.subgroups).
    metrics["subgroups"] = subgroup_metrics(predictions, rows, source=str(manifest))

    run_info = {
        "model": str(model_dir),
        "arch": model.config.arch,
        "soft_attention": model.has_attention,
        "input_size": model.config.input_size,
        "model_created": card.get("created", ""),
        "calibration": describe_calibration(model.calibration),
        "manifest": str(manifest),
        "split": settings.split or "all rows",
        "images": len(rows),
        "evaluated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": str(device),
        # which training seed and split protocol: the ablation pairs its arms by seed and names the protocol
        **run_provenance(card, manifest),
    }
    out.mkdir(parents=True, exist_ok=True)
    outcome = None
    if external is not None:
        run_info |= {"external_test": external.uri, "external_format": external.format}
        outcome = evaluate_external(model, external, out, settings, device, metrics)
        metrics |= {"external": outcome.section, "shift": outcome.shift}
    _write_csv(out / "predictions.csv", predictions)
    _write_csv(out / "predictions_isic.csv", isic_layout(predictions, names))

    class_table = tables.class_table(metrics)
    model_name = f"{model.config.arch}{' + SA' if model.has_attention else ''}"
    binary_table = tables.binary_table(metrics, model_name)
    with atomic_open(out / "table.csv", newline="") as handle:
        handle.write(tables.to_csv_text(class_table))
    markdown = tables.headline_markdown(metrics) + "\n" + tables.to_markdown(class_table)
    if binary_table is not None:
        with atomic_open(out / "table_binary.csv", newline="") as handle:
            handle.write(tables.to_csv_text(binary_table))
        markdown += f"\n{metrics['binary']['positive_class']} vs rest at threshold {settings.threshold:g}:\n\n"
        markdown += tables.to_markdown(binary_table)
    if outcome is not None:
        markdown += outcome.markdown
    with atomic_open(out / "table.md") as handle:
        handle.write(markdown)

    confusion_png = figures.confusion_matrix_png(metrics["confusion_matrix"], names)
    roc_png = figures.roc_png(y_true, y_prob, names, [metrics["per_class"][n]["auc"] for n in names])
    _write_bytes(out / "confusion_matrix.png", confusion_png)
    _write_bytes(out / "roc.png", roc_png)
    reliability_png = figures.reliability_png(metrics["calibration"])
    _write_bytes(out / "reliability.png", reliability_png)
    subgroups_png = subgroup_figure.subgroups_png(metrics["subgroups"], metrics["balanced_accuracy"])
    if subgroups_png is not None:
        _write_bytes(out / "subgroups.png", subgroups_png)

    curves_png, curves_caption = _training_curves(model_dir, card)
    if curves_png is not None:
        _write_bytes(out / "training_curves.png", curves_png)

    explainer = Explainer(model, device)
    examples = _explain_examples(explainer, pick_examples(rows, settings.explain_per_class), out / OVERLAY_DIR)

    write_json(
        out / "metrics.json",
        to_json_ready({"run": run_info, "grad_cam_target_layer": explainer.target_layer_description} | metrics),
    )
    # From the metrics.json just written, so that every section of it reaches the card.
    card_markdown = write_model_card(model_dir, out)
    html_text = render_report(
        title=f"Evaluation of {model_name} on {run_info['split']}",
        run_info=run_info,
        metrics=metrics,
        class_table=class_table,
        binary_table=binary_table,
        confusion_png=confusion_png,
        roc_png=roc_png,
        examples=examples,
        has_attention=model.has_attention,
        target_layer=explainer.target_layer_description,
        curves_png=curves_png,
        curves_caption=curves_caption,
        reliability_png=reliability_png,
        external=outcome.view if outcome is not None else None,
        subgroups=metrics["subgroups"],
        subgroups_png=subgroups_png,
        model_card_markdown=card_markdown,
    )
    with atomic_open(out / "report.html") as handle:
        handle.write(html_text)
    return metrics


def _training_curves(model_dir: str | Path, card: dict[str, Any]) -> tuple[bytes | None, str]:
    """The training-curves figure of the run that produced the model, and the report's caption for it.

    A missing or unreadable history never fails an evaluation: the caption then says plainly why there are
    no curves (a model from the registry or ``skinattn models init`` carries no history)."""
    path = find_history(model_dir)
    if path is None:
        return None, (
            f"No training curves: no {HISTORY_FILE} in the model folder or beside it (models from the registry "
            "or 'skinattn models init' carry no training history)."
        )
    try:
        history = read_history(path)
    except DataError as exc:
        return None, f"No training curves: {exc}"
    if not history:
        return None, f"No training curves: {path} holds no finished epoch."
    monitor = ((card.get("metadata") or {}).get("training") or {}).get("monitor")
    return figures.training_curves_png(history, monitor), f"Per-epoch training loss and validation metrics from {path}."


def _explain_examples(explainer: Explainer, rows: pd.DataFrame, overlay_dir: Path) -> list[ExampleRow]:
    """Explain a few images, write their overlays, and return them as report rows."""
    examples = []
    batch_size = 8
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start : start + batch_size]
        try:
            size = explainer.model.config.input_size
            images = [open_image(loc, at_least=size) for loc in chunk["image_path"]]
        except DataError as exc:  # already read once by predict; a change since then is still reported clearly
            raise DataError(f"explaining examples: {exc}") from exc
        for (_, row), explanation in zip(chunk.iterrows(), explainer.explain(images)):
            paths = save_explanation(explanation, overlay_dir, row["image_id"])
            examples.append(
                ExampleRow(
                    image_id=row["image_id"],
                    true_label=row["label"],
                    predicted=explanation.predicted,
                    confidence=explanation.probabilities[explanation.predicted],
                    input_png=paths["input"].read_bytes(),
                    gradcam_png=paths["gradcam"].read_bytes(),
                    attention_png=paths["attention"].read_bytes() if "attention" in paths else None,
                )
            )
    return examples


def metrics_from_predictions(predictions_csv: str | Path, class_names: list[str], **kwargs: Any) -> dict[str, Any]:
    """Recompute the metrics from a written predictions.csv (e.g. to re-score with another threshold)."""
    table = pd.read_csv(predictions_csv, dtype={"image_id": str, "label": str, "prediction": str})
    return compute_metrics(label_indices(table, class_names), probabilities(table, class_names), class_names, **kwargs)


__all__ = ["EvaluationSettings", "evaluate", "metrics_from_predictions", "pick_examples", "save_explanation"]
