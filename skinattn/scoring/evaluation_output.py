"""The evaluation of a scored archive that carries labels, through :mod:`skinattn.evaluation`'s public API.

The predictions already exist, so nothing is predicted again: the labelled rows are handed to the
evaluation's metrics, paper tables, figures and HTML report, and written into one folder (the same file
names as ``skinattn evaluate``, without the Grad-CAM/attention examples, which need the images again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from skinattn.evaluation import compute_metrics, figures, isic_layout, tables
from skinattn.evaluation.metrics import to_json_ready
from skinattn.evaluation.predict import label_indices, probabilities, prob_column
from skinattn.evaluation.report import render_report
from skinattn.fileio import atomic_open, write_json
from skinattn.scoring.tables import TOP_CLASS, write_table


def write_evaluation(
    labelled: pd.DataFrame,
    class_names: Sequence[str],
    out_dir: str | Path,
    run_info: Mapping[str, Any],
    n_bootstrap: int = 1000,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Write metrics.json, table.csv/.md, predictions(.csv, _isic.csv), the figures and report.html.

    Returns the metrics, or None (and writes nothing) when no label is a class of the model.
    """
    out = Path(out_dir)
    names = list(class_names)
    known = labelled[labelled["label"].isin(names)]
    if known.empty:
        return None
    # The evaluation's predictions layout: image_id, label, prediction, prob_<class>...
    predictions = pd.DataFrame({"image_id": known["image_id"], "label": known["label"], "prediction": known[TOP_CLASS]})
    for name in names:
        predictions[prob_column(name)] = known[prob_column(name)].to_numpy()
    y_true, y_prob = label_indices(predictions, names), probabilities(predictions, names)
    # The scorer applied the model's temperature and names it in the run info (model_temperature).
    temperature = float(run_info.get("model_temperature") or 1.0)
    metrics = compute_metrics(y_true, y_prob, names, n_bootstrap=n_bootstrap, progress=progress, temperature=temperature)
    skipped = len(labelled) - len(known)
    if skipped:
        metrics["notes"].append(f"{skipped} labelled image(s) have a class this model does not predict; left out")
    info = dict(run_info) | {"images": len(known), "evaluated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}

    out.mkdir(parents=True, exist_ok=True)
    write_table(predictions, out / "predictions.csv")
    write_table(isic_layout(predictions, names), out / "predictions_isic.csv")
    class_table = tables.class_table(metrics)
    with atomic_open(out / "table.csv", newline="") as handle:
        handle.write(tables.to_csv_text(class_table))
    with atomic_open(out / "table.md") as handle:
        handle.write(tables.headline_markdown(metrics) + "\n" + tables.to_markdown(class_table))
    confusion_png = figures.confusion_matrix_png(metrics["confusion_matrix"], names)
    roc_png = figures.roc_png(y_true, y_prob, names, [metrics["per_class"][n]["auc"] for n in names])
    reliability_png = figures.reliability_png(metrics["calibration"])
    for name, data in (("confusion_matrix.png", confusion_png), ("roc.png", roc_png), ("reliability.png", reliability_png)):
        with atomic_open(out / name, "wb") as handle:
            handle.write(data)
    write_json(out / "metrics.json", to_json_ready({"run": info} | metrics))
    html = render_report(
        title=f"Batch scoring evaluation of {info.get('model_version', 'model')} on {info.get('source', 'archive')}",
        run_info=info, metrics=metrics, class_table=class_table, binary_table=None,
        confusion_png=confusion_png, roc_png=roc_png, examples=[], has_attention=False, target_layer="",
        reliability_png=reliability_png,
    )  # fmt: skip
    with atomic_open(out / "report.html") as handle:
        handle.write(html)
    return metrics
