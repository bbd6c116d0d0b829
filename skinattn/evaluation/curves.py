"""The training-curves page: one self-contained HTML file of a run's history (figure + per-epoch table).

Why a page of its own: the KFP UI shows an HTML artifact inline on the task that produced it, so the train
task shows its curves whether or not an evaluation follows; ``skinattn train`` writes the same file into
its run folder. The evaluation report draws the same figure (``figures.training_curves_png``).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skinattn.evaluation.figures import best_epoch, training_curves_png
from skinattn.evaluation.history import read_history
from skinattn.fileio import atomic_open

CURVES_FILE = "curves.html"
# history.jsonl field -> column heading of the per-epoch table (fields a history lacks are left out).
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("epoch", "epoch"),
    ("train_loss", "train loss"),
    ("val_loss", "val loss"),
    ("train_accuracy", "train accuracy"),
    ("accuracy", "val accuracy"),
    ("balanced_accuracy", "val balanced accuracy"),
    ("macro_auc", "val macro AUC"),
    ("lr", "learning rate"),
    ("improved", "improved"),
)
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.4em; } img { max-width: 100%; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
.note { color: #8a4b00; }
"""


def _cell(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if field == "lr" and isinstance(value, (int, float)):
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(history: Sequence[Mapping[str, Any]]) -> str:
    columns = [(field, heading) for field, heading in TABLE_COLUMNS if any(field in r for r in history)]
    head = "".join(f"<th>{html.escape(heading)}</th>" for _, heading in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(field, record.get(field))}</td>" for field, _ in columns) + "</tr>"
        for record in history
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_curves_page(
    history: Sequence[Mapping[str, Any]], *, title: str = "Training curves", monitor: str | None = None
) -> str:
    """The page as one HTML string; an empty history gives a page that says so instead of a figure."""
    if not history:
        body = '<p class="note">No finished epoch in the training history: there are no curves to draw.</p>'
    else:
        best = best_epoch(history)
        facts = f"{len(history)} epoch(s)" + (f"; best epoch {best}" if best is not None else "")
        facts += f" by {monitor}" if monitor and best is not None else ""
        png = base64.b64encode(training_curves_png(history, monitor)).decode("ascii")
        body = (
            f"<p>{html.escape(facts)}.</p>"
            f'<img alt="training curves" src="data:image/png;base64,{png}">'
            f"{_table(history)}"
        )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def write_curves_page(
    history_path: str | Path, out: str | Path, *, title: str = "Training curves", monitor: str | None = None
) -> Path:
    """Read ``history_path`` (a run's history.jsonl) and write its curves page to ``out``, atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_curves_page(read_history(history_path), title=title, monitor=monitor)
    with atomic_open(out) as handle:
        handle.write(page)
    return out
