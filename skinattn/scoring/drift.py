"""Drift: does a scored collection look like what the model was trained on?

The scored collection's predictions (:class:`~skinattn.evaluation.distribution.PredictionCounts`: top-class
counts and the max-probability histogram) are compared with the **reference** stored with the model at
training time (the validation split's predictions by the best model, see
:mod:`skinattn.evaluation.distribution`). Without a reference (a model saved before references existed),
the scored distribution is still reported and the comparison says "no reference stored with this model".

Statistics:

- **Population stability index** (PSI) of two distributions over the same bins, with shares ``e_i``
  (reference) and ``a_i`` (scored): ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)``. Computed for the
  predicted-class distribution as a whole (K bins, ``class_psi``), for each class against all the others
  (2 bins: that class or not, ``classes[].psi``) and for the confidence histogram (10 bins of width 0.1).
  Only bins that occur on at least one side count (a class neither side predicts is no difference), and
  their shares are smoothed with :data:`PSEUDO_COUNT` (0.5, Jeffreys) per bin so that a bin empty on one
  side does not make the index infinite and a handful of images is not over-read.
  Thresholds, the usual convention of credit-scoring model monitoring (Siddiqi, *Credit Risk Scorecards*,
  Wiley 2006; studied in Yurdakul, *Statistical Properties of Population Stability Index*, Western
  Michigan University 2018): PSI < 0.1 no change; 0.1 to 0.25 moderate change; > 0.25 major change.
- **Chi-square test of homogeneity** on the predicted-class counts (a 2 x K table: reference, scored;
  classes absent from both left out; no continuity correction): ``scipy.stats.chi2_contingency``. It
  accounts for the reference being a sample itself. It is reported, not used for the flag: on thousands of
  images its p-value is tiny for shifts too small to matter, which the PSI (a size, not a test) is not.

The flag (``level``): the larger of the class PSI's and the confidence PSI's bands: ``none`` → "looks like
the training data", ``moderate`` → "differs somewhat from the training data", ``major`` → "differs from the
training data", followed by what differs (the classes whose own PSI is at least 0.1, with how much more
or less often they are predicted, and whether confidence is lower or higher).

Inputs the model never saw: every validation image was decoded, so files that were refused or could not be
decoded have no counterpart in the reference. Their share is reported (``inputs.error_share``) and named in
the notes from :data:`ERROR_SHARE_NOTE` (1 %) on; it does not change the level, which describes the
predictions.

Outputs (:func:`write_drift`): ``<stem>_drift.json`` (everything above, the reference included) and
``<stem>_drift.png`` (class shares side by side, and the two confidence histograms).
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skinattn.evaluation.distribution import CONFIDENCE_EDGES, PredictionCounts
from skinattn.fileio import atomic_open, write_json

DRIFT_FORMAT = "skinattn-drift"
PSI_MODERATE = 0.1  # PSI below this: no change
PSI_MAJOR = 0.25  # PSI above this: major change; in between: moderate
PSEUDO_COUNT = 0.5  # added to every bin's count before shares are taken
ERROR_SHARE_NOTE = 0.01  # from this share of refused/undecodable files on, the notes name it
SMALL_SAMPLE = 100  # fewer images than this on either side: the notes say the statistics are noisy
MAX_CLASSES_NAMED = 3  # in the message
MEAN_SHIFT_WORDS = 0.02  # a shifted confidence histogram is "lower"/"higher" when its mean moved this much
LEVELS = ("none", "moderate", "major")
FLAGS = {
    "none": "looks like the training data",
    "moderate": "differs somewhat from the training data",
    "major": "differs from the training data",
}
NO_REFERENCE = "no reference stored with this model"
NO_IMAGES = "nothing was scored: no comparison"


# ---- statistics (pure functions over counts) ---------------------------------------------------------


def smoothed_shares(counts: Sequence[float], pseudo_count: float = PSEUDO_COUNT) -> np.ndarray:
    """``(c_i + pseudo_count) / (sum(c) + pseudo_count * len(c))``."""
    values = np.asarray(counts, dtype=np.float64) + pseudo_count
    return values / values.sum()


def psi(reference: Sequence[float], scored: Sequence[float], pseudo_count: float = PSEUDO_COUNT) -> float:
    """Population stability index of two count vectors over the same bins, over the bins that occur on at
    least one side, with smoothed shares (see the module docstring)."""
    reference, scored = np.asarray(reference, dtype=np.float64), np.asarray(scored, dtype=np.float64)
    occurring = (reference + scored) > 0
    if not occurring.any():
        return 0.0
    e, a = smoothed_shares(reference[occurring], pseudo_count), smoothed_shares(scored[occurring], pseudo_count)
    return float(np.sum((a - e) * np.log(a / e)))


def class_psi(reference: Sequence[float], scored: Sequence[float], pseudo_count: float = PSEUDO_COUNT) -> list[float]:
    """Per class, the PSI of "this class or another one" (two bins) between the two count vectors."""
    e, a = np.asarray(reference, dtype=np.float64), np.asarray(scored, dtype=np.float64)
    return [psi([e[k], e.sum() - e[k]], [a[k], a.sum() - a[k]], pseudo_count) for k in range(len(e))]


def chi_square(reference: Sequence[float], scored: Sequence[float]) -> dict[str, Any]:
    """Chi-square test of homogeneity of two count vectors (2 x K table, no continuity correction):
    ``statistic``, ``dof`` and ``p_value``; all None when there is nothing to test (an empty side, or
    fewer than two classes occurring at all)."""
    from scipy.stats import chi2_contingency

    table = np.array([reference, scored], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return {"statistic": None, "dof": None, "p_value": None}
    result = chi2_contingency(table, correction=False)
    return {"statistic": float(result.statistic), "dof": int(result.dof), "p_value": float(result.pvalue)}


def psi_level(value: float) -> str:
    """``none`` (< 0.1), ``moderate`` (0.1 to 0.25) or ``major`` (> 0.25)."""
    if value < PSI_MODERATE:
        return "none"
    return "moderate" if value <= PSI_MAJOR else "major"


# ---- the comparison --------------------------------------------------------------------------------------


def _share(count: float, total: float) -> float:
    return count / total if total else 0.0


def _percent(share: float) -> str:
    if share == 0:
        return "0%"
    return f"{100 * share:.1f}%" if share < 0.1 else f"{100 * share:.0f}%"


def _times(ratio: float) -> str:
    if ratio == 0:
        return "0×"
    return f"{ratio:.0f}×" if ratio >= 10 else f"{ratio:.1f}×" if ratio >= 0.1 else f"{ratio:.2f}×"


def _class_phrase(row: Mapping[str, Any]) -> str:
    name, ref, new = row["class"], row["reference_share"], row["scored_share"]
    if ref == 0:
        return f"class {name} predicted for {_percent(new)} of images, never on the validation split"
    if new == 0:
        return f"class {name} never predicted ({_percent(ref)} on the validation split)"
    return f"class {name} predicted {_times(row['ratio'])} as often ({_percent(new)} vs {_percent(ref)})"


def _reference_counts(reference: Mapping[str, Any], class_names: Sequence[str]) -> PredictionCounts | str:
    """The reference as counts, or why it cannot be compared."""
    try:
        counts = PredictionCounts.from_dict(reference)
    except (KeyError, TypeError, ValueError) as exc:
        return f"the stored reference is unreadable ({exc})"
    if counts.class_names != list(class_names):
        return f"the stored reference is for classes {counts.class_names}, not the model's {list(class_names)}"
    return counts


def compare(
    reference: Mapping[str, Any] | None,
    scored: PredictionCounts,
    errors: int = 0,
    no_reference: str = NO_REFERENCE,
) -> dict[str, Any]:
    """The drift report of a scored collection (``scored``, plus ``errors`` files that could not be scored)
    against a model's ``reference`` (None: ``no_reference`` says why there is none)."""
    files = scored.images + int(errors)
    report: dict[str, Any] = {
        "format": DRIFT_FORMAT,
        "thresholds": {"psi_moderate": PSI_MODERATE, "psi_major": PSI_MAJOR, "pseudo_count": PSEUDO_COUNT},
        "scored": scored.to_dict(),
        "inputs": {"files": files, "scored": scored.images, "errors": int(errors),
                   "error_share": round(_share(errors, files), 6), "reference_error_share": 0.0},  # fmt: skip
        "reference": None if reference is None else dict(reference),
        "reference_stored": reference is not None,
    }
    notes = []
    if files and errors / files >= ERROR_SHARE_NOTE:
        notes.append(f"{errors} of {files} files ({_percent(errors / files)}) could not be scored (refused or "
                     "undecodable; none on the validation split): see the errors file")  # fmt: skip
    ref = _reference_counts(reference, scored.class_names) if reference is not None else no_reference
    if isinstance(ref, str) or not scored.images or not ref.images:
        level = "no-reference" if isinstance(ref, str) else "no-images"
        flag = ref if isinstance(ref, str) else NO_IMAGES
        return report | {"level": level, "flag": flag, "message": flag, "notes": notes, "classes": [],
                         "class_psi": None, "class_level": None, "chi_square": chi_square([], []),
                         "confidence": {"psi": None, "level": None, "reference_mean": None,
                                        "scored_mean": scored.to_dict()["mean_confidence"]}}  # fmt: skip

    per_class = class_psi(ref.predicted, scored.predicted)
    rows = []
    for k, name in enumerate(scored.class_names):
        r, s = _share(ref.predicted[k], ref.images), _share(scored.predicted[k], scored.images)
        rows.append({"class": name, "reference_share": round(r, 6), "scored_share": round(s, 6),
                     "ratio": round(s / r, 4) if r else None, "psi": round(per_class[k], 6),
                     "level": psi_level(per_class[k])})  # fmt: skip
    overall = psi(ref.predicted, scored.predicted)
    confidence = psi(ref.confidence, scored.confidence)
    class_level, confidence_level = psi_level(overall), psi_level(confidence)
    level = LEVELS[max(LEVELS.index(class_level), LEVELS.index(confidence_level))]

    details = []
    if class_level != "none":
        shifted = sorted((r for r in rows if r["level"] != "none"), key=lambda r: -r["psi"])
        phrases = [_class_phrase(r) for r in shifted[:MAX_CLASSES_NAMED]]
        details += phrases or ["the predicted classes are spread differently"]
    ref_mean, new_mean = ref.mean_confidence, scored.mean_confidence
    if confidence_level != "none":
        shift = new_mean - ref_mean
        how = "distributed differently" if abs(shift) < MEAN_SHIFT_WORDS else "lower" if shift < 0 else "higher"
        details.append(f"confidence {how} (mean {new_mean:.2f} vs {ref_mean:.2f})")
    if min(scored.images, ref.images) < SMALL_SAMPLE:
        notes.append(f"few images ({scored.images} scored, {ref.images} on the validation split): "
                     "the shares and indices are noisy")  # fmt: skip
    flag = FLAGS[level]
    return report | {
        "level": level,
        "flag": flag,
        "message": flag + (": " + "; ".join(details) if details else ""),
        "notes": notes,
        "classes": rows,
        "class_psi": round(overall, 6),
        "class_level": class_level,
        "chi_square": chi_square(ref.predicted, scored.predicted),
        "confidence": {"psi": round(confidence, 6), "level": confidence_level,
                       "reference_mean": round(ref_mean, 6), "scored_mean": round(new_mean, 6)},  # fmt: skip
    }


def summary_entry(report: Mapping[str, Any]) -> dict[str, Any]:
    """The few drift numbers a run's ``_summary.json`` carries (the full report is ``_drift.json``)."""
    return {
        "level": report["level"],
        "flag": report["flag"],
        "message": report["message"],
        "notes": list(report["notes"]),
        "class_psi": report["class_psi"],
        "confidence_psi": report["confidence"]["psi"],
        "chi_square_p_value": report["chi_square"]["p_value"],
        "error_share": report["inputs"]["error_share"],
        "reference_images": (report["reference"] or {}).get("images") if report["reference_stored"] else None,
    }


# ---- presentation ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_lines(report: Mapping[str, Any]) -> list[str]:
    """A short Markdown section: the flag and notes, per class the validation vs scored share, ratio and
    PSI, the confidence and chi-square figures, and the share of files that could not be scored."""
    blocks = [["## Drift against the training data"], [f"**{report['message']}**"]]
    if report["notes"]:
        blocks.append([f"- {note}" for note in report["notes"]])
    scored = report["scored"]
    if report["classes"]:
        confidence = report["confidence"]
        table = ["| predicted class | validation | scored | ratio | PSI |", "| --- | ---: | ---: | ---: | ---: |"]
        for row in report["classes"]:
            ratio = "–" if row["ratio"] is None else _times(row["ratio"])
            table.append(f"| {row['class']} | {_percent(row['reference_share'])} | {_percent(row['scored_share'])} "
                         f"| {ratio} | {_fmt(row['psi'])} |")  # fmt: skip
        table.append(f"| **all classes** | | | | **{_fmt(report['class_psi'])}** ({report['class_level']}) |")
        table.append(f"| **confidence** | mean {_fmt(confidence['reference_mean'], 2)} "
                     f"| mean {_fmt(confidence['scored_mean'], 2)} | | **{_fmt(confidence['psi'])}** "
                     f"({confidence['level']}) |")  # fmt: skip
        blocks.append(table)
        chi = report["chi_square"]
        if chi["p_value"] is not None:
            blocks.append([f"Chi-square test on the predicted-class counts: {chi['statistic']:.1f} "
                           f"({chi['dof']} dof), p = {chi['p_value']:.2g}."])  # fmt: skip
        blocks.append([f"PSI < {PSI_MODERATE} no change, {PSI_MODERATE} to {PSI_MAJOR} moderate, > {PSI_MAJOR} major; "
                       f"reference: the model's {report['reference']['images']} validation image(s)."])  # fmt: skip
    elif scored["images"]:  # no comparison: what was predicted, at least
        shares = ", ".join(f"{name} {_percent(_share(n, scored['images']))}" for name, n in scored["predicted"].items())
        blocks.append([f"Predicted classes of the {scored['images']} scored image(s): {shares}; mean confidence "
                       f"{_fmt(scored['mean_confidence'], 2)}."])  # fmt: skip
    inputs = report["inputs"]
    blocks.append([f"Files refused or undecodable: {inputs['errors']} of {inputs['files']} "
                   f"({_percent(inputs['error_share'])})."])  # fmt: skip
    return [line for i, block in enumerate(blocks) for line in ([""] if i else []) + block]


def _psi_suffix(value: float | None) -> str:
    return "" if value is None else f" (PSI {value:.2f})"


def drift_png(report: Mapping[str, Any]) -> bytes:
    """Class shares side by side (validation vs scored) and the two confidence histograms, as PNG bytes."""
    scored = report["scored"]
    reference = report["reference"] if report["classes"] else None
    names = list(scored["predicted"])
    figure = Figure(figsize=(max(9.0, 4.0 + 0.7 * len(names)), 4.0))
    bars, hist = figure.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(names), 4), 5]})
    series = [("scored", scored)] if reference is None else [("validation (reference)", reference), ("scored", scored)]
    width = 0.8 / len(series)
    x = np.arange(len(names))
    edges = np.asarray(CONFIDENCE_EDGES)
    centres, bin_width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    for i, (label, data) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        total = max(int(data["images"]), 1)
        bars.bar(x + offset, [data["predicted"].get(n, 0) / total for n in names], width, label=label)
        hist.bar(centres + offset * bin_width, np.asarray(data["confidence"]) / total, width * bin_width, label=label)
    bars.set_xticks(x, labels=names, rotation=45, ha="right")
    bars.set_ylabel("share of images")
    bars.set_title("Predicted class" + _psi_suffix(report["class_psi"]))
    hist.set_xlim(0.0, 1.0)
    hist.set_xlabel("confidence (max probability)")
    hist.set_ylabel("share of images")
    hist.set_title("Confidence" + _psi_suffix(report["confidence"]["psi"]))
    for axes in (bars, hist):
        axes.legend(fontsize=8)
    figure.suptitle(textwrap.fill(report["message"], 120), fontsize=9)
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def write_drift(report: Mapping[str, Any], json_path: str | Path, png_path: str | Path) -> None:
    """Write the report as JSON (NaN-free) and its figure, each atomically."""
    write_json(json_path, _finite(report))
    data = drift_png(report)
    with atomic_open(png_path, "wb") as handle:
        handle.write(data)


def _finite(value: Any) -> Any:
    """JSON-ready: NaN and infinities (which strict JSON has not) become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
