"""Steps of the batch-scoring components (``components/scoring.py``): pin the model, list and shard the
archive, score one shard, merge the shards, summarise and publish the result.

The scoring itself, the shard files and the checks of a merge are in :mod:`skinattn.scoring`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from skinattn.errors import DataError
from skinattn.progress import LOG_PROGRESS_INTERVAL_S
from skinattn.steps.evaluation import METRICS_FILE, TABLE_FILE

SHARD_PREDICTIONS_FILE = "predictions.parquet"  # typed and compact between tasks; the merge picks the final format
SCORE_OUTPUT_FORMATS = ("csv", "parquet")
# Pod logs are not terminals: one progress line every this many seconds instead of ten a second.
# The same interval as any bar that is not drawn on a terminal (skinattn.progress); the step sets it in the
# environment so that every bar of the pod follows it.
POD_PROGRESS_INTERVAL_S = str(LOG_PROGRESS_INTERVAL_S)


def resolve_scoring_model(model: str, registry_root: str) -> str:
    """The model every shard uses: a model folder as given, or the registry version that ``model`` names now.

    ``production`` and ``latest`` are resolved ONCE, here (:func:`skinattn.scoring.pin_model`), so that a
    promotion while the shards run cannot give two shards two different models (the merge would refuse them).
    """
    return pin_scoring_model(model, registry_root)["model"]


def pin_scoring_model(model: str, registry_root: str, record_out: str | Path | None = None) -> dict[str, Any]:
    """:func:`resolve_scoring_model`, and what the run records about that model: ``{"model": <what every
    shard gets>, "lineage": <artifact metadata>}``. For a registry version, the lineage is the registry's
    (:func:`skinattn.steps.registry.version_lineage`: ``registry_uri``, version, metrics, fingerprint) and
    ``record_out`` receives the version's record; for a model folder, its path (nothing in the registry)."""
    from skinattn.fileio import write_json
    from skinattn.scoring.model_source import pin_model
    from skinattn.steps.registry import version_lineage, write_version_record

    pinned = pin_model(model, registry_root or None)
    if pinned.record is None:
        print(f"model folder {model}")
        lineage = {"model_folder": str(Path(model).absolute()), "version": pinned.name}
        if record_out is not None:
            write_json(record_out, lineage)
    else:
        assert pinned.registry is not None  # pin_model sets both for a registry spec
        print(f"model {model!r} in {registry_root} is {pinned.name} ({pinned.registry.location(pinned.record)})")
        lineage = version_lineage(pinned.registry, pinned.record) | {"requested": model}
        if record_out is not None:
            write_version_record(pinned.registry, pinned.record, record_out)
    return {"model": pinned.name, "lineage": lineage}


def shard_archive_step(source_uri: str, num_shards: int, out: str | Path) -> list[str]:
    """List ``source_uri`` once and write one manifest per shard into ``out``, and beside them what was listed;
    return the manifests' file names in shard order (what the pipeline fans out over)."""
    from skinattn.fileio import write_json
    from skinattn.scoring import list_archive, write_shard_manifests
    from skinattn.scoring.shards import SHARD_LISTING_FILE, listing_summary

    count = int(num_shards)  # kfp.local hands numbers over as floats
    if count < 1:
        raise DataError(f"num_shards must be at least 1, got {num_shards}")
    listing = list_archive(source_uri)
    summary = listing_summary(listing, write_shard_manifests(listing, count, out))
    write_json(Path(out) / SHARD_LISTING_FILE, summary)
    print(f"{source_uri}: {summary['listed']} image(s) in {count} shard(s)")
    return summary["shards"]


def score_shard_step(
    shards_dir: str | Path,
    shard_name: str,
    model: str,
    registry_root: str,
    out: str | Path,
    *,
    batch_size: int,
    workers: int,
    gpus: int,
) -> dict[str, Any]:
    """Score one shard manifest of ``shards_dir`` into the folder ``out`` (predictions, errors, shard.json).

    ``gpus`` 0 scores on the CPU; 1 on the GPU the task was given (CUDA when visible: under kfp.local on a
    machine without one, the CPU, with a warning). A shard runs on one device, so more GPUs per shard
    would sit idle: use more shards instead.
    """
    import os

    import torch

    gpus = int(gpus)
    if gpus not in (0, 1):
        raise DataError(f"gpus_per_shard={gpus}: a shard is scored on one device; use 0 (CPU) or 1 and more shards")
    if gpus and not torch.cuda.is_available():
        print("warning: gpus_per_shard=1 but no CUDA device is visible; scoring this shard on the CPU", file=sys.stderr)
    # Before skinattn.scoring is imported: tqdm reads its TQDM_* environment once, when it is first imported.
    os.environ.setdefault("TQDM_MININTERVAL", POD_PROGRESS_INTERVAL_S)
    from skinattn.fileio import write_json
    from skinattn.scoring import ScoreSettings, ShardManifest, score_shard
    from skinattn.scoring.shards import SHARD_RESULT_FILE

    manifest = ShardManifest.read(Path(shards_dir) / shard_name)
    settings = ScoreSettings(
        batch_size=int(batch_size), workers=int(workers), device="auto" if gpus else "cpu",
        evaluate=False, n_bootstrap=0, progress=True,
    )  # fmt: skip
    out = Path(out)
    result = score_shard(manifest, out / SHARD_PREDICTIONS_FILE, model=model, settings=settings,
                         registry_root=registry_root or None)  # fmt: skip
    info = {
        "shard": manifest.name,
        "index": manifest.index,
        "count": manifest.count,
        "source": manifest.source,
        "model_version": result.model_version,
        "scored": result.scored,
        "errors": result.failed,
    }
    write_json(out / SHARD_RESULT_FILE, info)
    print(f"{manifest.name}: scored {result.scored}, errors {result.failed}, model {result.model_version}")
    return info


def merge_shards_step(
    shards_dir: str | Path, scored_dirs: list[str], out_dir: str | Path, output_format: str, bootstrap: int
) -> dict[str, Any]:
    """Merge the scored shards, in shard order, into ``out_dir/predictions.<output_format>`` and the files
    ``skinattn score`` writes beside it (``_isic.csv``, ``_errors.csv``, ``_summary.json``, ``_drift.json``
    and ``_drift.png``, ``_eval/`` when the archive carries labels); returns the summary plus the listing's
    counts."""
    from skinattn.fileio import write_json
    from skinattn.scoring import ScoreSettings, merge_outputs
    from skinattn.scoring.shards import SHARD_LISTING_FILE, check_listing_accounted_for, shards_in_order

    fmt = output_format.strip().lower().lstrip(".")
    if fmt not in SCORE_OUTPUT_FORMATS:
        raise DataError(f"output_format={output_format!r}: choose one of {', '.join(SCORE_OUTPUT_FORMATS)}")
    listing = json.loads((Path(shards_dir) / SHARD_LISTING_FILE).read_text(encoding="utf-8"))
    ordered = shards_in_order(listing, scored_dirs)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = ScoreSettings(n_bootstrap=int(bootstrap), progress=False)
    shard_files = [folder / SHARD_PREDICTIONS_FILE for folder, _ in ordered]
    result = merge_outputs(shard_files, Path(out_dir) / f"predictions.{fmt}", settings)
    summary = json.loads(result.summary.read_text(encoding="utf-8"))
    summary |= {key: listing[key] for key in ("source", "listed", "skipped_non_images", "labels_file", "num_shards")}
    summary["merged_from"] = [info["shard"] for _, info in ordered]
    check_listing_accounted_for(listing, summary["scored"], summary["errors"])
    # The folder is published and downloaded elsewhere: name its files relative to it in the file...
    relative = {key: None if summary[key] is None else Path(summary[key]).name
                for key in ("predictions", "isic_predictions", "errors_file", "evaluation", "drift_file",
                            "drift_figure")}  # fmt: skip
    write_json(result.summary, summary | relative)
    return summary  # ...and return the paths of this machine to the caller


# drift_level in the KFP Metrics: the report's level as a number (the UI shows numbers only).
DRIFT_LEVEL_CODES = {"none": 0, "moderate": 1, "major": 2}


def drift_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The drift numbers of a merged run's summary for the KFP Metrics output: the class and confidence PSI,
    the chi-square p-value, the error share and the level as 0 (none), 1 (moderate), 2 (major). A run
    without a model reference has the error share only; the full report is ``predictions_drift.json``."""
    entry = summary.get("drift") or {}
    values = {
        "drift_class_psi": entry.get("class_psi"),
        "drift_confidence_psi": entry.get("confidence_psi"),
        "drift_chi_square_p_value": entry.get("chi_square_p_value"),
        "drift_error_share": entry.get("error_share"),
        "drift_level": DRIFT_LEVEL_CODES.get(entry.get("level", "")),
    }
    return {name: round(float(value), 6) for name, value in values.items() if value is not None}


def write_scoring_summary(summary: dict[str, Any], out: str | Path) -> str:
    """Write (and return) the Markdown the KFP UI shows for a merged run: counts, model version, errors,
    the drift section (predictions against the model's validation reference), and the evaluation's
    headline and per-class table when the archive carried labels."""
    from skinattn.fileio import atomic_open
    from skinattn.scoring.drift import markdown_lines
    from skinattn.scoring.model_source import describe_model

    evaluation_dir = summary.get("evaluation")
    lines = [
        "# Batch scoring",
        "",
        "| | |",
        "| --- | --- |",
        f"| source | `{summary['source']}` |",
        f"| model version | `{summary['model_version']}` |",
        *([f"| model | {described} |"] if (described := describe_model(summary)) else []),
        f"| images listed | {summary['listed']} |",
        f"| scored | {summary['scored']} |",
        f"| errors (refused or unreadable) | {summary['errors']} |",
        f"| labelled | {summary['labelled']} |",
        f"| non-image files skipped | {summary['skipped_non_images']} |",
        f"| shards | {summary['num_shards']} |",
    ]
    drift_file = summary.get("drift_file")
    if drift_file is not None and Path(drift_file).is_file():
        lines += ["", *markdown_lines(json.loads(Path(drift_file).read_text(encoding="utf-8")))]
    if evaluation_dir is not None:
        metrics = json.loads((Path(evaluation_dir) / METRICS_FILE).read_text(encoding="utf-8"))
        lines += ["", f"## Evaluation on the {metrics['num_samples']} labelled image(s)", ""]
        # table.md opens with the headline line: balanced accuracy and the macro figures first.
        lines.append((Path(evaluation_dir) / TABLE_FILE).read_text(encoding="utf-8").strip())
    text = "\n".join(lines) + "\n"
    with atomic_open(out) as handle:  # creates the artifact's folder when needed
        handle.write(text)
    return text
