"""The self-contained HTML report: every figure and overlay embedded as a base64 PNG, no external files."""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from skinattn.evaluation.subgroups import subgroup_table
from skinattn.evaluation.tables import headline_values


# The look every HTML report of the project shares (also the paired ablation report's).
BASE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""
_STYLE = BASE_STYLE + """
.figures img { max-width: 48%; vertical-align: top; }
.curves img { max-width: 100%; }
.example { display: inline-block; margin: 0 1.5em 1em 0; }
.example figure { display: inline-block; margin: 0 4px; text-align: center; font-size: 0.8em; }
.example img { height: 160px; }
.caption { font-size: 0.85em; color: #444; }
.note { color: #8a4b00; }
"""


@dataclasses.dataclass
class ExampleRow:
    """One explained image of the report: the three panels of paper Fig. 7 / Fig. 9 and a caption."""

    image_id: str
    true_label: str
    predicted: str
    confidence: float
    input_png: bytes
    gradcam_png: bytes
    attention_png: bytes | None = None


def img_tag(png: bytes, alt: str) -> str:
    """An ``<img>`` with ``png`` embedded as base64 data (shared with the paired ablation report)."""
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(table: pd.DataFrame, digits: int = 3) -> str:
    """``table`` as an HTML table: floats to ``digits`` decimals, None / NaN as ``n/a``, the rest escaped."""
    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "n/a"
        return f"{value:.{digits}f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in table.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _headline_html(metrics: Mapping[str, Any]) -> str:
    intervals = metrics.get("confidence_intervals", {}).get("intervals", {})
    rows = []
    for name, value in headline_values(metrics).items():
        ci = intervals.get(name)
        shown = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
        ci_text = "" if not ci or ci["low"] is None else f"{ci['low']:.3f} – {ci['high']:.3f}"
        rows.append(f"<tr><td>{html.escape(name.replace('_', ' '))}</td><td>{shown}</td><td>{ci_text}</td></tr>")
    ci_info = metrics.get("confidence_intervals")
    header_ci = f"{ci_info['confidence']:.0%} CI ({ci_info['n_resamples']} {html.escape(ci_info['method'])} resamples)" if ci_info else "CI (off)"
    return f"<table><thead><tr><th>metric</th><th>value</th><th>{header_ci}</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _examples_html(examples: Sequence[ExampleRow], has_attention: bool, target_layer: str) -> str:
    if not examples:
        return "<p>No examples were explained.</p>"
    intro = (
        "Each example: the input, the Soft-Attention map (paper Fig. 7) and Grad-CAM of the same model (paper Fig. 9) "
        f"for the predicted class. Grad-CAM target layer: {html.escape(target_layer)}."
        if has_attention
        else "This model has no soft attention: each example shows the input and its Grad-CAM for the predicted class "
        f"(target layer: {html.escape(target_layer)})."
    )
    blocks = []
    for ex in examples:
        panels = [f"<figure>{img_tag(ex.input_png, 'input ' + ex.image_id)}<figcaption>input</figcaption></figure>"]
        if ex.attention_png is not None:
            panels.append(f"<figure>{img_tag(ex.attention_png, 'attention ' + ex.image_id)}<figcaption>SA attention</figcaption></figure>")
        panels.append(f"<figure>{img_tag(ex.gradcam_png, 'grad-cam ' + ex.image_id)}<figcaption>Grad-CAM</figcaption></figure>")
        caption = (
            f"{html.escape(ex.image_id)}: true <b>{html.escape(ex.true_label)}</b>, predicted "
            f"<b>{html.escape(ex.predicted)}</b> ({ex.confidence:.2f})"
        )
        blocks.append(f'<div class="example">{"".join(panels)}<div class="caption">{caption}</div></div>')
    return f"<p>{intro}</p>" + "\n".join(blocks)


def _curves_html(curves_png: bytes | None, caption: str) -> str:
    """The training-curves section: the figure with its caption, or the caption alone saying why none is drawn."""
    if curves_png is None:
        return f'<p class="note">{html.escape(caption or "No training history was given, so no curves are drawn.")}</p>'
    return f'<div class="curves">{img_tag(curves_png, "training curves")}</div><p class="caption">{html.escape(caption)}</p>'


@dataclasses.dataclass
class ExternalView:
    """The external test set's part of the report (issue 14): where it came from, the headline metrics and
    per-class recall side by side with the internal test split, the recall figure, and what was excluded."""

    source: str
    images: int
    headline: pd.DataFrame  # skinattn.evaluation.shift.headline_side_by_side
    recall: pd.DataFrame  # skinattn.evaluation.shift.recall_side_by_side
    recall_png: bytes
    notes: Sequence[str] = ()


def _external_html(view: ExternalView | None) -> str:
    if view is None:
        return ""
    notes = "".join(f'<li class="note">{html.escape(n)}</li>' for n in view.notes)
    return (
        f"<h2>External test set: internal vs external</h2>"
        f"<p>{view.images} images of {html.escape(view.source)}, evaluated with the same model and settings. "
        "Shift = external − internal: negative means worse on the external set.</p>"
        f"{f'<ul>{notes}</ul>' if notes else ''}"
        f"{table_html(view.headline)}"
        f"<h3>Per-class recall</h3>{table_html(view.recall)}"
        f'<div class="curves">{img_tag(view.recall_png, "per-class recall, internal vs external")}</div>'
    )


def _calibration_html(metrics: Mapping[str, Any], reliability_png: bytes | None) -> str:
    """ECE with the model's temperature and at T = 1, and the reliability diagrams of both."""
    calibration = metrics.get("calibration")
    if not calibration:
        return '<p class="note">No calibration figures (metrics computed by an older skinattn).</p>'

    def shown(value: Any) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    temperature = calibration["temperature"]
    rows = (
        f"<tr><td>ECE, uncalibrated (T = 1)</td><td>{shown(calibration['ece_uncalibrated'])}</td></tr>"
        f"<tr><td>ECE, with the model's temperature (T = {temperature:.4g})</td><td>{shown(calibration['ece'])}</td></tr>"
    )
    text = (
        f"<table><thead><tr><th>expected calibration error ({calibration['n_bins']} bins, top label)</th>"
        f"<th>value</th></tr></thead><tbody>{rows}</tbody></table>"
        '<p class="caption">ECE: the gap between confidence (top probability) and accuracy, averaged over '
        "confidence bins weighted by their images; 0 is perfectly calibrated. Every probability in this report "
        "is computed with the model's temperature (softmax of logits / T; T is fitted on the validation split "
        "when the model is trained, and 1 when the model stores none). Temperature never changes the predicted "
        "class, so accuracy and the confusion matrix are the same either way.</p>"
    )
    if reliability_png is not None:
        text += f'<div class="curves">{img_tag(reliability_png, "reliability diagrams")}</div>'
    return text


def _subgroups_html(section: Mapping[str, Any] | None, png: bytes | None) -> str:
    """Accuracy and balanced accuracy per sex / age band / site (skinattn.evaluation.subgroups), table and figure."""
    if not section:
        return ""
    if not section.get("available"):
        notes = "; ".join(section.get("notes") or [])
        return f'<h2>Subgroup metrics</h2><p class="note">None available: {html.escape(notes)}.</p>'
    notes = "".join(f'<li class="note">{html.escape(n)}</li>' for n in section.get("notes") or [])
    figure = f'<div class="curves">{img_tag(png, "balanced accuracy by subgroup")}</div>' if png is not None else ""
    return (
        f"<h2>Subgroup metrics</h2><p>Joined to the manifest's metadata by image_id; groups of fewer than "
        f"{section.get('small_n')} images are flagged: their figures rest on a handful of images.</p>"
        f"{table_html(subgroup_table(dict(section)))}{f'<ul>{notes}</ul>' if notes else ''}{figure}"
    )


def _model_card_html(markdown: str | None) -> str:
    """The model card (MODEL_CARD.md beside this report), shown as its Markdown source, folded."""
    if not markdown:
        return ""
    return (
        "<h2>Model card</h2><details><summary>MODEL_CARD.md (intended use, data, metrics, subgroups, calibration, "
        f'limitations)</summary><pre style="white-space: pre-wrap">{html.escape(markdown)}</pre></details>'
    )


def render_report(
    *,
    title: str,
    run_info: Mapping[str, Any],
    metrics: Mapping[str, Any],
    class_table: pd.DataFrame,
    binary_table: pd.DataFrame | None,
    confusion_png: bytes,
    roc_png: bytes,
    examples: Sequence[ExampleRow],
    has_attention: bool,
    target_layer: str,
    curves_png: bytes | None = None,
    curves_caption: str = "",
    reliability_png: bytes | None = None,
    external: ExternalView | None = None,
    subgroups: Mapping[str, Any] | None = None,
    subgroups_png: bytes | None = None,
    model_card_markdown: str | None = None,
) -> str:
    """The whole report as one HTML string. ``curves_png`` is the training-curves figure of the model's run
    (None when its history is not at hand); ``curves_caption`` says where it came from, or why it is absent.
    ``reliability_png``: the reliability diagrams (before/after temperature scaling) of ``metrics["calibration"]``.
    ``external``: the external test set beside the internal one (a section after the per-class results).
    ``subgroups`` / ``subgroups_png``: metrics.json's ``subgroups`` section and its figure;
    ``model_card_markdown``: the model card written beside the report (a folded section at the end)."""
    info_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in run_info.items()
    )
    notes = "".join(f'<li class="note">{html.escape(n)}</li>' for n in metrics.get("notes", []))
    binary_section = ""
    if binary_table is not None:
        binary = metrics["binary"]
        binary_section = (
            f"<h2>Binary view (paper Table 4): {html.escape(binary['positive_class'])} vs rest at threshold "
            f"{binary['threshold']:g}</h2>{table_html(binary_table)}"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table><tbody>{info_rows}</tbody></table>
<h2>Headline metrics</h2>
{_headline_html(metrics)}
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Per-class results (paper Table 1/2 layout)</h2>
{table_html(class_table)}
{binary_section}
{_external_html(external)}
{_subgroups_html(subgroups, subgroups_png)}
<h2>Confusion matrix and ROC curves</h2>
<div class="figures">{img_tag(confusion_png, "confusion matrix")} {img_tag(roc_png, "ROC curves")}</div>
<h2>Calibration</h2>
{_calibration_html(metrics, reliability_png)}
<h2>Training curves</h2>
{_curves_html(curves_png, curves_caption)}
<h2>Explanations</h2>
{_examples_html(examples, has_attention, target_layer)}
{_model_card_html(model_card_markdown)}
</body></html>
"""
