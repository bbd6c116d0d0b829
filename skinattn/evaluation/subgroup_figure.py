"""The subgroup figure of the report: balanced accuracy per sex, age band and anatomical site.

One horizontal bar per group, grouped by kind, with n written beside each bar; groups under the small-n
threshold are drawn hatched and pale, so a reader sees at once which differences rest on a handful of images.
A dashed line marks the whole test set's balanced accuracy. Built like :mod:`skinattn.evaluation.figures`
(matplotlib ``Figure`` + Agg canvas, never pyplot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from skinattn.evaluation.figures import _png

_COLOURS = {"sex": "#4c72b0", "age": "#dd8452", "site": "#55a868"}


def subgroups_png(section: Mapping[str, Any], overall_balanced_accuracy: float | None = None) -> bytes | None:
    """The figure as PNG bytes, or None when the section holds no subgroup (no metadata)."""
    bars: list[tuple[str, str, int, float, bool]] = []
    for kind, block in (section.get("groups") or {}).items():
        for row in block.get("rows", []):
            bars.append((kind, row["group"], int(row["n"]), float(row["balanced_accuracy"]), bool(row.get("small"))))
    if not bars:
        return None
    figure = Figure(figsize=(7.5, 1.0 + 0.28 * len(bars)))
    axes = figure.add_subplot()
    positions = list(range(len(bars)))[::-1]  # first group at the top
    for y, (kind, _group, n, value, small) in zip(positions, bars):
        colour = _COLOURS.get(kind, "#8172b3")
        axes.barh(y, value, color=colour, alpha=0.35 if small else 0.9, hatch="//" if small else None,
                  edgecolor=colour)  # fmt: skip
        axes.text(min(value, 1.0) + 0.01, y, f"n={n}{' (small)' if small else ''}", va="center", fontsize=7)
    axes.set_yticks(positions, labels=[f"{kind}: {group}" for kind, group, *_ in bars], fontsize=8)
    if overall_balanced_accuracy is not None:
        axes.axvline(overall_balanced_accuracy, color="black", linestyle="--", linewidth=1,
                     label=f"whole test set ({overall_balanced_accuracy:.3f})")  # fmt: skip
        axes.legend(loc="lower right", fontsize=7)
    axes.set_xlim(0.0, 1.2)  # room for the n labels right of a bar at 1.0
    axes.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.set_xlabel("balanced accuracy")
    axes.set_title(f"Balanced accuracy by subgroup (hatched: n < {section.get('small_n', 30)})")
    return _png(figure)
