"""The repeated ablation's paired report: does Soft Attention help each architecture beyond noise?

From the evaluation folders of every (network × training seed) cell (metrics.json + predictions.csv of
``skinattn evaluate``) to:

- a verdict sentence per architecture (:func:`verdict`), and one summary sentence over all of them;
- the paired table (SA − baseline per architecture: balanced accuracy and macro AUC differences with their
  paired bootstrap CIs, seeds in favour, McNemar), the per-arm table (mean ± sd over seeds) and the
  per-class DeLong table, as Markdown, CSV and JSON;
- a figure (per-seed differences as dots, their mean with the CI) and a self-contained HTML report.

Every heading names the split protocol that produced the test set (``run.split_protocol`` of the
evaluations). The statistics are :mod:`skinattn.evaluation.paired`.

Verdict rule (balanced accuracy, the headline metric): "helped" only when the CI of the seed-averaged
difference lies above 0 AND the difference is positive for a majority of the seeds; "hurt" symmetrically;
anything else is "not beyond noise". With one seed per arm the seed-to-seed noise is unknown and the verdict
says it cannot be judged; so does a run without bootstrap resamples.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from skinattn.errors import DataError
from skinattn.evaluation.ablation import check_distinct_seeds, network_name
from skinattn.evaluation.paired import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, PairedComparison, compare_arms
from skinattn.evaluation.predict import label_indices, probabilities, read_predictions
from skinattn.evaluation.provenance import describe_protocol, protocol_heading
from skinattn.evaluation.report import BASE_STYLE, img_tag, table_html
from skinattn.evaluation.tables import to_csv_text, to_markdown

TREATMENT = "Soft Attention"
# Per-arm figures (mean ± sd over seeds): label → flattened metrics.json key.
ARM_METRICS: tuple[tuple[str, str], ...] = (
    ("balanced accuracy", "balanced_accuracy"),
    ("macro AUC", "macro_avg.auc"),
    ("macro precision", "macro_avg.precision"),
    ("accuracy", "accuracy"),
)
MINUS = "\u2212"


# ---- the cells -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cell:
    """One evaluated (network, training seed): its metrics.json and its per-image probabilities."""

    folder: str
    metrics: dict[str, Any]
    image_ids: tuple[str, ...]
    y_true: np.ndarray
    probabilities: np.ndarray  # (N, K), in the order of the metrics' classes

    @property
    def network(self) -> str:
        return network_name(self.metrics["run"])

    @property
    def arch(self) -> str:
        return str(self.metrics["run"]["arch"])

    @property
    def treated(self) -> bool:
        return bool(self.metrics["run"].get("soft_attention"))

    @property
    def training_seed(self) -> int | None:
        seed = self.metrics["run"].get("training_seed")
        return None if seed is None else int(seed)

    def metric(self, flat_key: str) -> float:
        value: Any = self.metrics
        for part in flat_key.split("."):
            value = value[part]
        return math.nan if value is None else float(value)


def read_cell(folder: str | Path) -> Cell:
    """One evaluation folder; a clear DataError when metrics.json or predictions.csv is missing or unreadable."""
    folder = Path(folder)
    metrics_path, predictions_path = folder / "metrics.json", folder / "predictions.csv"
    if not metrics_path.is_file():
        raise DataError(f"{metrics_path}: no metrics.json in this evaluation folder")
    if not predictions_path.is_file():
        raise DataError(f"{predictions_path}: no predictions.csv in this evaluation folder (the paired comparison needs "
                        "the per-image probabilities)")  # fmt: skip
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    classes = list(metrics["classes"])
    try:
        table = read_predictions(predictions_path)
        y_true, probs = label_indices(table, classes), probabilities(table, classes)
    except (DataError, KeyError, ValueError) as exc:
        raise DataError(f"{predictions_path}: {exc}") from None
    return Cell(str(folder), metrics, tuple(table["image_id"]), y_true, probs)


def align_cells(cells: Sequence[Cell]) -> list[Cell]:
    """The cells with their rows in the first cell's image order; refuses cells evaluated on other images,
    other labels or other classes (a paired comparison needs the very same test images)."""
    reference = cells[0]
    order = {image_id: i for i, image_id in enumerate(reference.image_ids)}
    aligned = [reference]
    for cell in cells[1:]:
        if list(cell.metrics["classes"]) != list(reference.metrics["classes"]):
            raise DataError(f"{cell.folder}: classes {cell.metrics['classes']} differ from {reference.folder}'s "
                            f"{reference.metrics['classes']}")  # fmt: skip
        if len(cell.image_ids) != len(order) or set(cell.image_ids) != set(order):
            missing = sorted(set(order) - set(cell.image_ids))[:5]
            extra = sorted(set(cell.image_ids) - set(order))[:5]
            raise DataError(
                f"{cell.folder}: evaluated on other test images than {reference.folder} ({len(cell.image_ids)} vs "
                f"{len(order)} images; missing e.g. {missing}, extra e.g. {extra}); paired comparisons need one test set"
            )
        position = np.argsort([order[image_id] for image_id in cell.image_ids])
        y_true = cell.y_true[position]
        if not np.array_equal(y_true, reference.y_true):
            raise DataError(f"{cell.folder}: the same images carry other labels than in {reference.folder}")
        aligned.append(dataclasses.replace(cell, image_ids=reference.image_ids, y_true=y_true,
                                           probabilities=cell.probabilities[position]))  # fmt: skip
    return aligned


# ---- per arm and per architecture ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """One network over its seeds: metric label → (mean, sd); sd is NaN with one seed."""

    network: str
    seeds: tuple[int | None, ...]
    figures: dict[str, tuple[float, float]]


def summarise_arm(network: str, cells: Sequence[Cell]) -> ArmSummary:
    figures = {}
    for label, key in ARM_METRICS:
        values = np.array([cell.metric(key) for cell in cells], dtype=np.float64)
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        figures[label] = (float(np.mean(values)), sd)
    return ArmSummary(network, tuple(cell.training_seed for cell in cells), figures)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``outcome``: helped, hurt, not beyond noise, or cannot judge; ``sentence``: plain language."""

    outcome: str
    sentence: str


@dataclasses.dataclass(frozen=True)
class ArchitectureResult:
    arch: str
    baseline: ArmSummary
    treated: ArmSummary
    comparison: PairedComparison
    verdict: Verdict


@dataclasses.dataclass(frozen=True)
class PairedAblation:
    """The whole paired report of one ablation run."""

    protocol: str | None
    classes: list[str]
    images: int
    n_resamples: int
    confidence: float
    arms: list[ArmSummary]
    results: list[ArchitectureResult]
    unpaired: list[str]  # networks without their other arm: in Table 1, not compared

    @property
    def protocol_text(self) -> str:
        return describe_protocol(self.protocol)

    @property
    def protocol_heading(self) -> str:
        return protocol_heading(self.protocol)


def _points(value: float) -> str:
    """A difference of rates in percentage points, signed, with a true minus sign."""
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value * 100:+.1f}"
    return text.replace("-", MINUS)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.2g}" if value < 0.1 else f"p = {value:.2f}"


def verdict(arch: str, comparison: PairedComparison, treatment: str = TREATMENT) -> Verdict:
    """The verdict rule of the module docstring, as one sentence."""
    differences = comparison.per_seed_difference["balanced_accuracy"]
    mean = comparison.mean_difference["balanced_accuracy"]
    interval = comparison.intervals.get("balanced_accuracy")
    seeds = comparison.seeds
    higher, lower = sum(d > 0 for d in differences), sum(d < 0 for d in differences)
    mcnemar = f"McNemar {_p(comparison.mcnemar.p_mid)}"
    if interval is not None and math.isfinite(interval.low):
        ci = f"{interval.confidence:.0%} CI {_points(interval.low)} to {_points(interval.high)}".replace("%", " %")
    else:
        ci = "no bootstrap CI: bootstrap=0"
    change = f"balanced accuracy {_points(mean)} points"
    if seeds < 2:
        return Verdict("cannot judge", (
            f"With 1 seed per arm the seed-to-seed noise cannot be judged for {arch}: {change} with {treatment} "
            f"({ci} over test images only; {mcnemar}); run with 2 or more seeds to judge it."
        ))  # fmt: skip
    in_favour = f"{seeds} seeds, higher in {higher} of {seeds}"
    if interval is None or not math.isfinite(interval.low):
        return Verdict("cannot judge", (
            f"Without bootstrap resamples it cannot be judged whether {treatment} helped {arch} beyond noise: "
            f"{change} ({in_favour}; {mcnemar})."
        ))  # fmt: skip
    if interval.low > 0 and higher > seeds / 2:
        outcome, phrase = "helped", f"helped {arch} beyond noise"
    elif interval.high < 0 and lower > seeds / 2:
        outcome, phrase = "hurt", f"hurt {arch} beyond noise"
    else:
        outcome = "not beyond noise"
        phrase = f"did not {'help' if mean >= 0 else 'hurt'} {arch} beyond noise"
    return Verdict(outcome, f"On this data {treatment} {phrase}: {change} ({ci}, {in_favour}; {mcnemar}).")


def verdict_summary(results: Sequence[ArchitectureResult], treatment: str = TREATMENT) -> str:
    """One sentence over every architecture (the single result's own sentence when there is one)."""
    if not results:
        return f"No architecture was evaluated both with and without {treatment}, so nothing was compared."
    if len(results) == 1:
        return results[0].verdict.sentence
    groups: dict[str, list[str]] = {}
    for result in results:
        groups.setdefault(result.verdict.outcome, []).append(result.arch)

    def named(outcome: str) -> str:
        archs = groups.get(outcome, [])
        return f"{len(archs)} ({', '.join(archs)})" if archs else "none"

    text = (f"On this data {treatment} helped {named('helped')} of {len(results)} architectures beyond noise, "
            f"hurt {named('hurt')}, and changed {named('not beyond noise')} no more than noise does")  # fmt: skip
    if "cannot judge" in groups:
        text += f"; {named('cannot judge')} cannot be judged"
    return text + " (balanced accuracy; details per architecture below)."


def paired_ablation(
    cells: Sequence[Cell], *, n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0
) -> PairedAblation:
    """Group the cells by network, pair each architecture's two arms by training seed, and compare them."""
    if not cells:
        raise DataError("the paired ablation report needs at least one evaluation")
    check_distinct_seeds([cell.metrics for cell in cells])
    cells = align_cells(cells)
    protocols = {cell.metrics["run"].get("split_protocol") for cell in cells}
    if len(protocols) > 1:
        raise DataError(f"the evaluations come from different split protocols {sorted(map(str, protocols))}; "
                        "a paired comparison needs one test set")  # fmt: skip
    by_network: dict[str, list[Cell]] = {}
    for cell in cells:
        by_network.setdefault(cell.network, []).append(cell)
    for network_cells in by_network.values():
        network_cells.sort(key=lambda c: (c.training_seed is None, c.training_seed or 0))
    arms = {network: summarise_arm(network, network_cells) for network, network_cells in by_network.items()}
    classes = list(cells[0].metrics["classes"])
    results, unpaired = [], []
    for arch in dict.fromkeys(cell.arch for cell in cells):
        baseline_cells = by_network.get(network_name({"arch": arch, "soft_attention": False}))
        treated_cells = by_network.get(network_name({"arch": arch, "soft_attention": True}))
        if not baseline_cells or not treated_cells:
            unpaired.append((baseline_cells or treated_cells)[0].network)
            continue
        baseline_seeds = [c.training_seed for c in baseline_cells]
        treated_seeds = [c.training_seed for c in treated_cells]
        if baseline_seeds != treated_seeds:
            raise DataError(
                f"{arch}: the two arms were trained with different seeds (without SA {baseline_seeds}, with SA "
                f"{treated_seeds}); a paired comparison needs the same seeds in both"
            )
        comparison = compare_arms(
            cells[0].y_true,
            np.stack([c.probabilities for c in baseline_cells]),
            np.stack([c.probabilities for c in treated_cells]),
            classes, n_resamples=n_resamples, confidence=confidence, seed=seed,
        )  # fmt: skip
        baseline, treated = arms[baseline_cells[0].network], arms[treated_cells[0].network]
        results.append(ArchitectureResult(arch, baseline, treated, comparison, verdict(arch, comparison)))
    return PairedAblation(
        protocols.pop(), classes, len(cells[0].y_true), int(n_resamples), confidence, list(arms.values()), results, unpaired
    )


# ---- tables ------------------------------------------------------------------------------------------------


def paired_table(report: PairedAblation) -> pd.DataFrame:
    """One row per architecture: SA − baseline in points with CIs, seeds in favour, McNemar, verdict."""
    rows = []
    for result in report.results:
        c = result.comparison
        row: dict[str, Any] = {"architecture": result.arch, "seeds": c.seeds, "images": c.images}
        for metric, label in (("balanced_accuracy", "balanced accuracy"), ("macro_auc", "macro AUC")):
            interval = c.intervals.get(metric)
            row[f"Δ {label} (points)"] = 100 * c.mean_difference[metric]
            row[f"Δ {label} CI low"] = 100 * interval.low if interval else math.nan
            row[f"Δ {label} CI high"] = 100 * interval.high if interval else math.nan
            row[f"seeds higher ({label})"] = sum(d > 0 for d in c.per_seed_difference[metric])
        row |= {
            "only baseline right": c.mcnemar.only_baseline,
            "only SA right": c.mcnemar.only_treated,
            "McNemar mid-p": c.mcnemar.p_mid,
            "McNemar exact p": c.mcnemar.p_exact,
            "verdict": result.verdict.outcome,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def paired_summary_table(report: PairedAblation) -> pd.DataFrame:
    """:func:`paired_table` condensed for reading (Markdown, HTML): each difference with its CI in one cell."""
    rows = []
    for result in report.results:
        c = result.comparison
        row: dict[str, Any] = {"architecture": result.arch, "seeds": c.seeds}
        for metric, label in (("balanced_accuracy", "balanced accuracy"), ("macro_auc", "macro AUC")):
            interval = c.intervals.get(metric)
            ci = f" [{_points(interval.low)}, {_points(interval.high)}]" if interval else ""
            higher = sum(d > 0 for d in c.per_seed_difference[metric])
            row[f"Δ {label}, points [CI]"] = f"{_points(c.mean_difference[metric])}{ci}"
            row[f"seeds higher ({label})"] = f"{higher} of {c.seeds}"
        row["McNemar: only baseline / only SA right"] = (
            f"{c.mcnemar.only_baseline} / {c.mcnemar.only_treated}, {_p(c.mcnemar.p_mid)}"
        )
        row["verdict"] = result.verdict.outcome
        rows.append(row)
    return pd.DataFrame(rows)


def arm_table(report: PairedAblation) -> pd.DataFrame:
    """One row per network: seeds, then mean ± sd over seeds of each :data:`ARM_METRICS` figure."""
    rows = []
    for arm in report.arms:
        row: dict[str, Any] = {"network": arm.network, "seeds": len(arm.seeds)}
        for label, (mean, sd) in arm.figures.items():
            row[label] = f"{mean:.3f}" + ("" if math.isnan(sd) else f" ± {sd:.3f}")
        rows.append(row)
    return pd.DataFrame(rows)


def delong_table(report: PairedAblation) -> pd.DataFrame:
    """One row per (architecture, class): one-vs-rest AUCs of the seed-averaged probabilities, DeLong's p."""
    rows = []
    for result in report.results:
        for entry in result.comparison.delong:
            test = entry.test
            rows.append({
                "architecture": result.arch, "class": entry.class_name,
                "AUC baseline": test.auc_baseline if test else math.nan,
                "AUC SA": test.auc_treated if test else math.nan,
                "Δ AUC": test.difference if test else math.nan,
                "DeLong p": test.p_value if test else math.nan,
                "DeLong p (Holm)": entry.p_holm,
            })  # fmt: skip
    return pd.DataFrame(rows)


def to_json_ready(report: PairedAblation) -> dict[str, Any]:
    """paired.json: everything measured, with the verdicts and the protocol."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    return clean({
        "split_protocol": report.protocol,
        "split_protocol_description": report.protocol_text,
        "test_images": report.images,
        "bootstrap": {"resamples": report.n_resamples, "confidence": report.confidence,
                      "method": "paired, stratified by true class, same images for both arms and every seed"},
        "verdict": verdict_summary(report.results),
        "architectures": [
            {"arch": r.arch, "verdict": r.verdict.outcome, "sentence": r.verdict.sentence,
             "comparison": dataclasses.asdict(r.comparison)}
            for r in report.results
        ],
        "arms": [dataclasses.asdict(arm) for arm in report.arms],
        "unpaired": report.unpaired,
    })  # fmt: skip


def verdict_lines(report: PairedAblation) -> list[str]:
    """The summary sentence, then each architecture's sentence when there are several."""
    lines = [verdict_summary(report.results)]
    if len(report.results) > 1:
        lines += [r.verdict.sentence for r in report.results]
    return lines


def markdown(report: PairedAblation, table_1: pd.DataFrame | None = None) -> str:
    """The KFP Markdown: the verdict first, then the paired, per-arm and DeLong tables, then Table 1; every
    table heading names the split protocol."""
    seeds = sorted({len(arm.seeds) for arm in report.arms})
    protocol = report.protocol_heading
    parts = ["**Verdict.** " + " ".join(verdict_lines(report)), ""]
    parts.append(f"Test split: {report.protocol_text}; {report.images} images, the same for every network and seed; "
                 f"{'/'.join(map(str, seeds))} training seed(s) per network. CIs: paired bootstrap over test images "
                 f"({report.n_resamples} resamples).")  # fmt: skip
    if report.unpaired:
        parts.append(f"Not compared (only one arm was trained): {', '.join(report.unpaired)}.")
    if report.results:
        parts += ["", f"### Soft Attention − baseline, paired by test image and seed — {protocol}", "",
                  to_markdown(paired_summary_table(report))]  # fmt: skip
    parts += ["", f"### Per network, mean ± sd over seeds — {protocol}", "", to_markdown(arm_table(report))]
    if report.results:
        parts += ["", f"### DeLong test per class, seed-averaged probabilities — {protocol}", "",
                  to_markdown(delong_table(report))]  # fmt: skip
    if table_1 is not None:
        parts += ["", f"### Table 1: precision and AUC per class, mean over seeds — {protocol}", "", to_markdown(table_1)]
    return "\n".join(parts).rstrip() + "\n"


# ---- figure and HTML -------------------------------------------------------------------------------------


def differences_png(report: PairedAblation) -> bytes:
    """Per architecture: each seed's SA − baseline difference as a dot, the seed mean as a diamond with its
    paired bootstrap CI as a bar, for balanced accuracy and macro AUC (points); a line at 0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from skinattn.evaluation.figures import DPI

    results = report.results
    figure = Figure(figsize=(9.0, 1.6 + 0.55 * max(len(results), 1)))
    for column, (metric, label) in enumerate((("balanced_accuracy", "balanced accuracy"), ("macro_auc", "macro AUC"))):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.axvline(0.0, color="#888", linewidth=1)
        for row, result in enumerate(results):
            c = result.comparison
            dots = 100 * np.asarray(c.per_seed_difference[metric], dtype=np.float64)
            axes.scatter(dots, np.full(len(dots), row + 0.15), s=18, color="#7a9cc6", zorder=2,
                         label="one seed" if row == 0 else None)  # fmt: skip
            interval = c.intervals.get(metric)
            mean = 100 * c.mean_difference[metric]
            if interval is not None and math.isfinite(interval.low):
                axes.errorbar(mean, row - 0.1, xerr=[[mean - 100 * interval.low], [100 * interval.high - mean]],
                              fmt="D", color="black", capsize=3, zorder=3,
                              label=f"mean, {interval.confidence:.0%} CI" if row == 0 else None)  # fmt: skip
            else:
                axes.scatter([mean], [row - 0.1], marker="D", color="black", zorder=3, label="mean" if row == 0 else None)
        axes.set_yticks(range(len(results)), labels=[r.arch for r in results])
        axes.set_ylim(-0.7, max(len(results), 1) - 0.3)
        axes.invert_yaxis()
        axes.set_xlabel(f"Δ {label}, SA − baseline (points)")
        if column == 1:
            axes.tick_params(labelleft=False)
        if results:
            axes.legend(loc="best", fontsize=7)
    figure.suptitle(f"Soft Attention − baseline, {report.protocol_heading}", fontsize=10)
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


_STYLE = BASE_STYLE + """
.verdict { font-size: 1.1em; background: #f3f6fa; padding: 0.6em 1em; border-left: 4px solid #36c; }
.figure img { max-width: 100%; }
.caption { font-size: 0.85em; color: #444; }
"""


def render_html(report: PairedAblation, figure_png: bytes, table_1: pd.DataFrame | None = None) -> str:
    """The self-contained HTML report (figure embedded): verdict first, then figure and tables."""
    protocol = html.escape(report.protocol_heading)
    verdicts = "".join(f"<p>{html.escape(line)}</p>" for line in verdict_lines(report))
    sections = [
        f"<h2>SA − baseline, paired by test image and seed — {protocol}</h2>{table_html(paired_summary_table(report))}"
        if report.results else "",
        f"<h2>Per network, mean ± sd over seeds — {protocol}</h2>{table_html(arm_table(report))}",
        f"<h2>DeLong test per class, seed-averaged probabilities — {protocol}</h2>{table_html(delong_table(report))}"
        if report.results else "",
        f"<h2>Table 1: precision and AUC per class, mean over seeds — {protocol}</h2>{table_html(table_1)}"
        if table_1 is not None else "",
    ]
    method = (
        f"Each architecture's two arms were trained with the same training seeds and evaluated on the same "
        f"{report.images} test images. CIs: {report.n_resamples} paired bootstrap resamples of the test images "
        "(stratified by true class; the same images for both arms and every seed) of the seed-averaged "
        "difference. McNemar (mid-p; exact p in the table) compares the per-image correctness of each arm's seed "
        "ensemble (argmax of the seed-averaged probabilities); DeLong compares one-vs-rest AUCs of the same "
        "ensembles, with Holm's adjustment over the classes. Verdict: 'helped' only when the balanced-accuracy "
        "CI lies above 0 and a majority of seeds improved; 'hurt' symmetrically; otherwise not beyond noise."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Soft Attention ablation</title><style>{_STYLE}</style></head>
<body>
<h1>Soft Attention ablation: paired comparison</h1>
<p>Test split: {html.escape(report.protocol_text)}.</p>
<div class="verdict">{verdicts}</div>
<div class="figure">{img_tag(figure_png, "SA minus baseline per architecture")}</div>
<p class="caption">Dots: each seed's difference on the whole test set. Diamond and bar: the mean over seeds and its
paired bootstrap CI. Points = percentage points.</p>
{"".join(sections)}
<h2>Method</h2><p class="caption">{html.escape(method)}</p>
</body></html>
"""


def write_outputs(report: PairedAblation, out_dir: str | Path, table_1: pd.DataFrame | None = None) -> dict[str, Path]:
    """paired.md, paired.csv (the paired table), paired.json, paired.png and report.html into ``out_dir``."""
    from skinattn.fileio import atomic_open, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure_png = differences_png(report)
    texts = {
        "paired.md": markdown(report, table_1),
        "paired.csv": to_csv_text(paired_table(report)),
        "report.html": render_html(report, figure_png, table_1),
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = out / name
        with atomic_open(paths[name], newline="") as handle:
            handle.write(text)
    paths["paired.json"] = out / "paired.json"
    write_json(paths["paired.json"], to_json_ready(report))
    paths["paired.png"] = out / "paired.png"
    with atomic_open(paths["paired.png"], "wb") as handle:
        handle.write(figure_png)
    return paths


__all__ = [
    "ARM_METRICS", "ArchitectureResult", "ArmSummary", "Cell", "PairedAblation", "Verdict", "align_cells",
    "arm_table", "delong_table", "differences_png", "markdown", "paired_ablation", "paired_summary_table",
    "paired_table", "read_cell",
    "render_html", "to_json_ready", "verdict", "verdict_summary", "write_outputs",
]  # fmt: skip
