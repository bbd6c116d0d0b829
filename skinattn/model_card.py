"""The model card (Mitchell et al., 2019, "Model Cards for Model Reporting"): what a model is, what it is for
and not for, what it was trained and tested on, how well it did overall and per subgroup, how far its
probabilities can be trusted, and what it cannot do.

:func:`build_card` derives the card from two documents only, so that it reads the same wherever it is made:

- the model's ``model.json`` (:func:`skinattn.models.read_card`): architecture, classes, parameters, the
  ``pretrained`` section (source and sha256 of the starting weights), training settings and outcome, and the
  training data facts (``metadata.data``, :func:`skinattn.data.summary.data_facts`), plus ``calibration``
  when the model has one;
- the evaluation's ``metrics.json`` (optional): headline metrics with bootstrap CIs, per-class support, and the
  ``subgroups``, ``calibration`` and ``external`` sections when present. A model without evaluation metrics
  gets a card that says "not evaluated" instead of no card.

:func:`render_markdown` turns the card into ``MODEL_CARD.md``. Both are written by ``skinattn evaluate`` (next
to report.html), stored with every registry version (``MODEL_CARD.md`` + ``model_card.json``), copied into the
BentoML model, and served at ``GET /model-card``. This module is plain Python (no torch, pandas, kfp or
bentoml), so the registry and the serving process can use it cheaply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

CARD_MARKDOWN = "MODEL_CARD.md"
CARD_JSON = "model_card.json"
CARD_FORMAT = "skinattn-model-card"
CARD_VERSION = 1
# Fewer test images than this in a class or subgroup: its figures are flagged as unreliable (as in
# skinattn.evaluation.subgroups.SMALL_N, which this plain module does not import).
SMALL_N = 30

NOT_FOR_DIAGNOSIS = (
    "Not for diagnosis: research and decision support only, not a medical device. Its outputs must not be used "
    "to diagnose, treat or triage any patient; every lesion of concern needs a clinician's examination and, "
    "where indicated, histopathology."
)
INTENDED_USES: tuple[str, ...] = (
    "Research on dermoscopy image classification (e.g. reproducing and extending Datta et al., 2021, "
    "Soft-Attention CNNs).",
    "Decision support studies under clinical supervision: a second opinion that a trained clinician reviews, "
    "with the attention map and Grad-CAM shown as explanations, not as proof.",
    "Batch scoring of dermoscopy collections to prioritise review by experts, with drift monitoring.",
)
OUT_OF_SCOPE: tuple[str, ...] = (
    "Diagnosis or triage without a clinician, or any use as a medical device.",
    "Clinical (non-dermoscopic) photographs, smartphone snapshots, histopathology or any other image modality.",
    "Lesions outside the model's classes (the model always answers with one of its classes; it has no "
    "'none of these' answer).",
    "Populations unlike the training data (other skin types, ages or acquisition devices) without a local "
    "evaluation first.",
)

# Licence and citation by the manifest's format (the reader that produced it). The ISIC Archive states a
# licence per image, counted from its copyright_license column when the manifest has it.
_HAM10000_CITATION = (
    "Tschandl P, Rosendahl C, Kittler H. The HAM10000 dataset, a large collection of multi-source dermatoscopic "
    "images of common pigmented skin lesions. Sci. Data 5, 180161 (2018). doi:10.1038/sdata.2018.161; images: "
    "Harvard Dataverse doi:10.7910/DVN/DBW86T"
)
LICENCES: dict[str, dict[str, str]] = {
    "ham10000": {"licence": "CC BY-NC 4.0", "citation": _HAM10000_CITATION},
    "isic2018": {
        "licence": "CC BY-NC 4.0",
        "citation": _HAM10000_CITATION + "; Codella N et al. Skin Lesion Analysis Toward Melanoma Detection 2018: "
        "A Challenge Hosted by the International Skin Imaging Collaboration (ISIC). arXiv:1902.03368",
    },
    "isic-archive": {
        "licence": "per image, as listed in the download (copyright_license column of metadata.csv, licenses/)",
        "citation": "ISIC Archive (https://www.isic-archive.com); attribution per image in attribution.txt",
    },
}
UNKNOWN_LICENCE = {"licence": "not recorded, check the source", "citation": "not recorded"}

# Headline metrics in the order a reader should meet them (as in the evaluation report): balanced accuracy
# and the macro averages first, then the figures the majority class carries.
_HEADLINE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("balanced_accuracy", ("balanced_accuracy",)),
    ("macro_auc", ("macro_avg", "auc")),
    ("macro_precision", ("macro_avg", "precision")),
    ("macro_f1", ("macro_avg", "f1")),
    ("accuracy", ("accuracy",)),
    ("weighted_auc", ("weighted_avg", "auc")),
    ("weighted_precision", ("weighted_avg", "precision")),
)
_PROTOCOLS = {
    "grouped": "grouped by lesion: train, val and test are lesion-disjoint (StratifiedGroupKFold on lesion_id, "
    "stratified by class); early stopping and model selection use val only, test is used once",
    "paper": "the authors' protocol: test (and here also val) drawn from single-image lesions; unlike the "
    "authors, who selected the checkpoint on their test set, model selection here uses val only. Single-image "
    "lesions are not a random sample of all lesions, so test figures are not those of the whole population",
}


def build_card(
    model_json: Mapping[str, Any], metrics: Mapping[str, Any] | None = None, *, weights_sha256: str | None = None
) -> dict[str, Any]:
    """The card as a JSON-ready dict (non-finite numbers become None); see the module docstring."""
    metadata = model_json.get("metadata") or {}
    data = metadata.get("data") or None
    evaluated = isinstance(metrics, Mapping) and "per_class" in metrics
    fitted = model_json.get("calibration")  # the temperature the model applies (None: T = 1, plain softmax)
    card = {
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "model_details": _model_details(model_json, weights_sha256),
        "intended_use": {"statement": NOT_FOR_DIAGNOSIS, "uses": list(INTENDED_USES)},
        "out_of_scope": list(OUT_OF_SCOPE),
        "training_data": _training_data(data),
        "evaluation": _evaluation(metrics, data) if evaluated else _not_evaluated(metrics),
        "subgroups": _subgroups(metrics) if evaluated else None,
        "calibration": _calibration(fitted, (metrics or {}).get("calibration") if evaluated else None),
        "limitations": _limitations(model_json, data, metrics if evaluated else None, fitted),
    }
    return _json_ready(card)


def card_json(card: Mapping[str, Any]) -> str:
    """The card as strict JSON text (``model_card.json``)."""
    return json.dumps(card, indent=2, allow_nan=False) + "\n"


def card_files(
    model_json: Mapping[str, Any], metrics: Mapping[str, Any] | None = None, weights_sha256: str | None = None
) -> dict[str, str]:
    """The card's two files as text, by name: ``{CARD_MARKDOWN: Markdown, CARD_JSON: JSON}``. Every place that
    writes, stores or serves a card builds it here, so they all say the same."""
    card = build_card(model_json, metrics, weights_sha256=weights_sha256)
    return {CARD_MARKDOWN: render_markdown(card), CARD_JSON: card_json(card)}


# ---------------------------------------------------------------------------------------------- sections


def _model_details(model_json: Mapping[str, Any], weights_sha256: str | None) -> dict[str, Any]:
    config = model_json.get("config") or {}
    metadata = model_json.get("metadata") or {}
    training = metadata.get("training") or {}
    train_config = metadata.get("config") or {}
    optim, train = train_config.get("optim") or {}, train_config.get("train") or {}
    return {
        "architecture": config.get("arch"),
        "soft_attention": bool(config.get("soft_attention")),
        "input_size": config.get("input_size"),
        "classes": list(config.get("class_names") or []),
        "parameters": model_json.get("parameters"),
        "created": model_json.get("created"),
        "skinattn_version": model_json.get("skinattn_version"),
        "weights_sha256": weights_sha256,
        "pretrained": model_json.get("pretrained") or {"source": "none (random initialisation)", "sha256": None},
        "training": {
            "epochs_run": training.get("epochs_run"),
            "best_epoch": training.get("best_epoch"),
            "monitor": training.get("monitor"),
            "stop_reason": training.get("stop_reason"),
            "optimizer": f"Adam lr={optim['lr']} eps={optim.get('eps')}" if "lr" in optim else None,
            "batch_size": train.get("batch_size"),
            "seed": train.get("seed"),
            "balance": (train_config.get("data") or {}).get("balance"),
        } if training or train_config else None,
    }


def _training_data(data: Mapping[str, Any] | None) -> dict[str, Any]:
    if not data:
        return {"recorded": False, **UNKNOWN_LICENCE,
                "note": "The model card records no training data (a model not trained by skinattn train?)"}
    licence = LICENCES.get(str(data.get("format", "")).lower(), UNKNOWN_LICENCE)
    section = {
        "recorded": True,
        "format": data.get("format"),
        "source": data.get("source"),
        "manifest": data.get("manifest"),
        **licence,
        "images": data.get("images"),
        "lesions": data.get("lesions"),
        "counts": data.get("counts") or {},
        "split": data.get("split") or {},
    }
    if data.get("image_licences"):
        section["image_licences"] = data["image_licences"]
    return section


def headline_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``[{metric, value, low, high}]`` for the headline metrics, with the bootstrap CI where there is one."""
    intervals = (metrics.get("confidence_intervals") or {}).get("intervals") or {}
    rows = []
    for name, path in _HEADLINE:
        value: Any = metrics
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        ci = intervals.get(name) or {}
        rows.append({"metric": name, "value": value, "low": ci.get("low"), "high": ci.get("high")})
    return rows


def _evaluation(metrics: Mapping[str, Any], data: Mapping[str, Any] | None) -> dict[str, Any]:
    run = metrics.get("run") or {}
    ci = metrics.get("confidence_intervals") or {}
    protocol = str(((data or {}).get("split") or {}).get("protocol") or "")
    section: dict[str, Any] = {
        "evaluated": True,
        "split_protocol": protocol or "not recorded",
        "split_protocol_description": _PROTOCOLS.get(protocol, "the model card holds no training data facts"),
        "test_set": {
            "manifest": run.get("manifest"),
            "split": run.get("split"),
            "images": metrics.get("num_samples"),
            "per_class": {name: block.get("support") for name, block in (metrics.get("per_class") or {}).items()},
            "evaluated_at": run.get("evaluated"),
        },
        "confidence_intervals": (
            f"{ci.get('confidence', 0.95):.0%} {ci.get('method', 'bootstrap')} ({ci.get('n_resamples')} resamples, "
            f"seed {ci.get('seed')})" if ci else "none (evaluated with the bootstrap off)"
        ),
        "confidence": ci.get("confidence"),
        "internal": headline_rows(metrics),
        "notes": list(metrics.get("notes") or []),
    }
    external = metrics.get("external")
    if isinstance(external, Mapping):
        section["external"] = _external(external)
    return section


def _external(external: Mapping[str, Any]) -> dict[str, Any]:
    """An external test set's block: headline rows when it has evaluation metrics, else its numbers as given."""
    run = external.get("run") or {}
    rows = headline_rows(external)
    if not rows:
        rows = [{"metric": k, "value": v, "low": None, "high": None} for k, v in _scalars(external).items()]
    excluded = external.get("excluded") or {}
    return {
        "name": external.get("source") or external.get("name") or run.get("manifest"),
        "images": external.get("images") or external.get("num_samples"),
        "excluded": excluded.get("message") if isinstance(excluded, Mapping) else None,
        "rows": rows,
    }


def _subgroups(metrics: Mapping[str, Any]) -> dict[str, Any]:
    section = metrics.get("subgroups")
    if isinstance(section, Mapping):
        return dict(section)
    return {"available": False, "groups": {},
            "notes": ["the evaluation's metrics.json has no subgroups section (evaluated by an older skinattn)"]}


def _calibration(fitted: Any, measured: Any) -> dict[str, Any]:
    """The temperature the model applies (fitted at training, on validation) and, when evaluated, the
    calibration measured on the test set (metrics.json ``calibration``: ECE with and without it)."""
    return {
        "temperature_fit": dict(fitted) if isinstance(fitted, Mapping) else None,
        "on_test": _scalars(measured) if isinstance(measured, Mapping) else None,
    }


def _not_evaluated(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    recorded = _scalars(metrics or {})
    return {
        "evaluated": False,
        "note": "not evaluated: no evaluation metrics (metrics.json from 'skinattn evaluate') came with this model",
        "recorded_metrics": recorded,
    }


def _limitations(
    model_json: Mapping[str, Any], data: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None,
    calibration: Any,
) -> list[str]:  # fmt: skip
    config = model_json.get("config") or {}
    classes = list(config.get("class_names") or [])
    items = [
        "Dermoscopy images only: trained and tested on dermatoscope images; clinical photographs are out of scope.",
        f"It can only name its {len(classes)} classes ({', '.join(classes)}); any other lesion is forced into one "
        "of them.",
    ]
    fmt = str((data or {}).get("format", "")).lower()
    if fmt in ("ham10000", "isic2018"):
        items.append(
            "Population of the training data: HAM10000 images come from two sites (Vienna, Austria and "
            "Queensland, Australia), mostly of fair-skinned patients; skin type is not recorded, so performance "
            "on darker skin is unknown."
        )
    else:
        items.append("Population of the training data: not described by its source here; check it before use "
                     "on other populations.")
    if metrics is None:
        items.append("Not evaluated: no test metrics are attached to this model.")
    else:
        small = [name for name, block in (metrics.get("per_class") or {}).items() if (block.get("support") or 0) < SMALL_N]
        if small:
            items.append(f"Few test images for {', '.join(small)} (< {SMALL_N} each): their per-class figures are uncertain.")
        subgroups = metrics.get("subgroups") or {}
        if not subgroups.get("available"):
            items.append("Performance by sex, age and anatomical site was not measured (no such metadata in the "
                         "evaluated data).")
    if not calibration:
        items.append("Probabilities are uncalibrated softmax outputs: read them as scores, not as risks.")
    items.append("Not validated prospectively or on other dermatoscopes and clinics; expect lower performance "
                 "under such shifts (batch scoring reports prediction drift).")
    return items


# ---------------------------------------------------------------------------------------------- markdown


def render_markdown(card: Mapping[str, Any]) -> str:
    """``MODEL_CARD.md``: the card's sections as Markdown headings, lists and tables."""
    details = card["model_details"]
    name = f"{details.get('architecture')}{' + Soft Attention' if details.get('soft_attention') else ''}"
    parts = [f"# Model card: {name}", "", f"> **{card['intended_use']['statement']}**", ""]
    parts += _details_md(details)
    parts += ["## Intended use", "", *[f"- {u}" for u in card["intended_use"]["uses"]], ""]
    parts += ["## Out of scope", "", *[f"- {u}" for u in card["out_of_scope"]], ""]
    parts += _data_md(card["training_data"])
    parts += _evaluation_md(card["evaluation"])
    parts += _subgroups_md(card.get("subgroups"))
    parts += _calibration_md(card.get("calibration"))
    parts += ["## Known limitations", "", *[f"- {item}" for item in card["limitations"]], ""]
    return "\n".join(parts)


def _details_md(details: Mapping[str, Any]) -> list[str]:
    pretrained = details.get("pretrained") or {}
    rows = [
        ("architecture", details.get("architecture")),
        ("soft attention", "yes" if details.get("soft_attention") else "no (baseline)"),
        ("input size", f"{details.get('input_size')} px"),
        ("classes", ", ".join(details.get("classes") or [])),
        ("parameters", f"{details['parameters']:,}" if isinstance(details.get("parameters"), int) else "not recorded"),
        ("pretrained from", pretrained.get("source")),
        ("pretrained sha256", pretrained.get("sha256") or "n/a"),
        ("weights sha256", details.get("weights_sha256") or "n/a"),
        ("created", details.get("created")),
        ("skinattn version", details.get("skinattn_version")),
    ]
    training = details.get("training") or {}
    rows += [(f"training: {k.replace('_', ' ')}", v) for k, v in training.items() if v is not None]
    return ["## Model details", "", *_table(["field", "value"], rows), ""]


def _data_md(data: Mapping[str, Any]) -> list[str]:
    lines = ["## Training data", ""]
    if not data.get("recorded"):
        return lines + [f"{data.get('note')}. Licence: {data['licence']}.", ""]
    lines += [
        f"- Collection: {data.get('source') or 'not recorded'} (format {data.get('format')}); manifest "
        f"{data.get('manifest')}",
        f"- Licence: {data.get('licence')}",
        f"- Citation: {data.get('citation')}",
        f"- {data.get('images')} images of {data.get('lesions')} lesions",
    ]
    for licence, count in (data.get("image_licences") or {}).items():
        lines.append(f"  - {count} images under {licence}")
    counts = data.get("counts") or {}
    if counts:
        classes = [c for c in next(iter(counts.values())) if c != "total"]
        lines += ["", "Images per class and split:", ""]
        lines += _table(["split", *classes, "total"], [(s, *[row.get(c) for c in classes], row.get("total"))
                                                       for s, row in counts.items()])  # fmt: skip
    return lines + [""]


def _metric_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["metric"].replace("_", " "), _num(r["value"]),
             "" if r.get("low") is None else f"{_num(r['low'])} – {_num(r['high'])}") for r in rows]  # fmt: skip


def _evaluation_md(evaluation: Mapping[str, Any]) -> list[str]:
    lines = ["## Evaluation", ""]
    if not evaluation.get("evaluated"):
        lines += [f"**{evaluation['note'][0].upper()}{evaluation['note'][1:]}.**", ""]
        if evaluation.get("recorded_metrics"):
            lines += ["Metrics recorded at registration:", "",
                      *_table(["metric", "value"], [(k, _num(v)) for k, v in evaluation["recorded_metrics"].items()]), ""]
        return lines
    test = evaluation["test_set"]
    ci_header = f"{evaluation['confidence']:.0%} CI" if evaluation.get("confidence") else "CI"
    lines += [
        f"- Split protocol: {evaluation['split_protocol']}: {evaluation['split_protocol_description']}",
        f"- Test set: {test.get('images')} images ({test.get('split')} split of {test.get('manifest')}); per class: "
        + ", ".join(f"{k} {v}" for k, v in (test.get("per_class") or {}).items()),
        f"- Confidence intervals: {evaluation['confidence_intervals']}",
        "",
        "### Metrics on the internal test set",
        "",
        *_table(["metric", "value", ci_header], _metric_rows(evaluation["internal"])),
        "",
    ]
    external = evaluation.get("external")
    if external:
        lines += [f"### Metrics on the external test set ({external.get('name')}, {external.get('images')} images)", "",
                  *_table(["metric", "value", ci_header], _metric_rows(external["rows"])), ""]  # fmt: skip
        if external.get("excluded"):
            lines += [f"External set: {external['excluded']}.", ""]
    else:
        lines += ["No external test set was evaluated.", ""]
    lines += [f"- Note: {note}" for note in evaluation.get("notes") or []]
    return lines + ([""] if evaluation.get("notes") else [])


def _subgroups_md(subgroups: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Subgroup metrics", ""]
    if not subgroups or not subgroups.get("available"):
        notes = (subgroups or {}).get("notes") or ["not evaluated"]
        return lines + [f"None available: {'; '.join(notes)}.", ""]
    small = subgroups.get("small_n", SMALL_N)
    rows = []
    for kind, block in subgroups["groups"].items():
        for row in block["rows"]:
            flag = f"n < {small}: unreliable" if row.get("small") else ""
            rows.append((kind, row["group"], row["n"], _num(row["accuracy"]), _num(row["balanced_accuracy"]), flag))
    lines += _table(["subgroup", "group", "n", "accuracy", "balanced accuracy", "note"], rows)
    return lines + [""] + [f"- {note}" for note in subgroups.get("notes") or []] + [""]


def _calibration_md(calibration: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Calibration", ""]
    fitted, on_test = (calibration or {}).get("temperature_fit"), (calibration or {}).get("on_test")
    if fitted:
        lines += ["Temperature scaling fitted at training (the served probabilities use it):", "",
                  *_table(["field", "value"], [(k, _num(v)) for k, v in _scalars(fitted, keep_text=True).items()]), ""]
    else:
        lines += ["No temperature fitted: probabilities are plain softmax outputs (T = 1).", ""]
    if on_test:
        lines += ["Measured on the test set:", "", *_table(["field", "value"], [(k, _num(v)) for k, v in on_test.items()]), ""]
    else:
        lines += ["Calibration on the test set: not measured.", ""]
    return lines


# ---------------------------------------------------------------------------------------------- helpers


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        return ("n/a" if value is None else str(value)).replace("|", "\\|").replace("\n", " ")

    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]]  # fmt: skip


def _num(value: Any) -> Any:
    return f"{value:.3f}" if isinstance(value, float) else value


def _scalars(data: Mapping[str, Any], keep_text: bool = False, prefix: str = "") -> dict[str, Any]:
    """The numbers (and with ``keep_text``, strings) of a nested mapping under dotted names; lists skipped."""
    found: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found |= _scalars(value, keep_text, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[name] = value
        elif keep_text and isinstance(value, str):
            found[name] = value
    return found


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value
