"""The steps of the Kubeflow pipelines, as plain functions on folders and files.

Each KFP component in ``components/`` is a thin wrapper that calls exactly one function here with its
artifact paths: the logic lives in the installed package, where it is tested without Kubeflow, and the
component bodies stay small enough for KFP to ship as source code. Nothing here imports kfp; where a
step reports to the KFP UI, it is handed the artifact object and only calls its ``log_*`` methods.

Every function takes output folders that may not exist yet and fills them; all writes go through
``skinattn.fileio`` (temporary name, then rename) in the functions called.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from skinattn.errors import DataError, SkinattnError

PROMOTE = "promote"
KEEP = "keep"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
TABLE_FILE = "table.md"
PREDICTIONS_FILE = "predictions.csv"
# Headline numbers shown in the KFP UI's metrics table (flattened names of evaluation's metrics.json).
UI_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_avg.precision",
    "macro_avg.auc",
    "weighted_avg.precision",
    "weighted_avg.recall",
    "weighted_avg.auc",
)
# The KFP UI draws every point it is given; a few hundred are plenty for a curve.
MAX_ROC_POINTS = 200


class MetricsSink(Protocol):
    """What ``kfp.dsl.Metrics`` offers (structural, so that this module needs no kfp)."""

    def log_metric(self, metric: str, value: float) -> None: ...


class ClassificationSink(Protocol):
    """What ``kfp.dsl.ClassificationMetrics`` offers."""

    def log_confusion_matrix(self, categories: list[str], matrix: list[list[int]]) -> None: ...

    def log_roc_curve(self, fpr: list[float], tpr: list[float], threshold: list[float]) -> None: ...


# ---------------------------------------------------------------------------------------------- data


def ingest_step(data_uri: str, data_format: str, out: str | Path) -> dict[str, Any]:
    """Read and validate a collection into a manifest folder; refuse (DataError) when validation failed.

    Rows with problems are never dropped silently: any problem fails the step with every problem listed,
    so a pipeline never trains on a partly broken data set without someone deciding so.
    """
    from skinattn.data.ingest import ingest, summarise

    result = ingest(data_uri, data_format, out, on_error="fail", progress=False)
    print(summarise(result.report))
    if not result.ok:
        raise DataError(f"ingest of {data_uri} ({data_format}) failed validation; see {result.report_path}")
    return {"images": int(result.report["rows_written"]), "status": result.status}


def prepare_step(manifest: str | Path, out: str | Path, seed: int, cache_size: int | None) -> dict[str, Any]:
    """Split (grouped by lesion, stratified), balance train, and build the resize cache at ``cache_size``.

    Building the cache here puts it inside the prepared data set, so training finds it and every retry or
    cached re-run of the train step skips the decoding.
    """
    from skinattn.data.balance import BalanceSpec
    from skinattn.data.prepare import prepare
    from skinattn.data.splits import SplitSpec

    result = prepare(
        manifest, out, SplitSpec(seed=seed), BalanceSpec(seed=seed), cache_size=cache_size or None, progress=False
    )
    print(result.table)
    return result.counts


# ------------------------------------------------------------------------------------------ training


def training_overrides(
    prepared: str | Path,
    run_dir: str | Path,
    *,
    arch: str,
    soft_attention: bool,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[str]:
    """The ``section.field=value`` overrides of the default TrainConfig that the pipeline form sets."""
    values: dict[str, Any] = {
        "out_dir": str(run_dir),
        "data.prepared": str(prepared),
        "model.arch": arch,
        "model.soft_attention": bool(soft_attention),
        "model.img_size": int(image_size) if image_size else None,
        "train.epochs": int(epochs),
        "train.batch_size": int(batch_size),
        "optim.lr": float(lr),
        "train.seed": int(seed),
        "train.progress": False,  # pod logs are not terminals: one line per epoch is printed instead
    }
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def train_step(prepared: str | Path, model_out: str | Path, *, gpus: int = 0, **settings: Any) -> dict[str, Any]:
    """Train on a prepared folder; write the best model (plus config, history, summary) into ``model_out``.

    ``settings`` are the keyword arguments of :func:`training_overrides`. With ``gpus`` > 1 the run goes
    through ``skinattn train --nproc N`` (torchrun, one process per GPU); otherwise it runs in this process
    (CUDA when available, else CPU). The checkpoints stay in a scratch folder: a retried pod starts afresh.
    """
    from skinattn.training import load_config, train

    model_out = Path(model_out)
    with tempfile.TemporaryDirectory(prefix="skinattn-train-") as scratch:
        run_dir = Path(scratch) / "run"
        overrides = training_overrides(prepared, run_dir, **settings)
        if int(gpus) > 1:
            command = [sys.executable, "-m", "skinattn", "train", "--nproc", str(int(gpus))]
            for override in overrides:
                command += ["--set", override]
            code = subprocess.call(command)
            if code != 0:
                raise SkinattnError(f"distributed training on {gpus} GPUs failed (exit status {code})")
        else:
            train(load_config(None, overrides))
        shutil.copytree(run_dir / "model", model_out, dirs_exist_ok=True)
        for name in ("config.yaml", "history.jsonl", "summary.json"):
            shutil.copy2(run_dir / name, model_out / name)
    return json.loads((model_out / "summary.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------- evaluation


def evaluate_step(model_dir: str | Path, prepared: str | Path, out: str | Path, *, bootstrap: int = 1000) -> dict[str, Any]:
    """Evaluate a model on the test split of a prepared folder (see ``skinattn.evaluation.run``)."""
    from skinattn.evaluation.run import EvaluationSettings, evaluate

    return evaluate(model_dir, prepared, out, EvaluationSettings(split="test", n_bootstrap=int(bootstrap), progress=False))


def micro_roc(predictions_csv: str | Path, class_names: list[str], max_points: int = MAX_ROC_POINTS) -> dict[str, list[float]]:
    """The micro-averaged one-vs-rest ROC curve (every class's probabilities pooled) from predictions.csv.

    The KFP UI draws one curve per ClassificationMetrics; the micro average summarises all classes in one.
    The first threshold (infinite in scikit-learn) is reported as 1.0 so that the JSON stays valid.
    """
    import pandas as pd
    from sklearn.metrics import roc_curve

    from skinattn.evaluation.predict import label_indices, probabilities

    table = pd.read_csv(predictions_csv, dtype={"image_id": str, "label": str, "prediction": str}, keep_default_na=False)
    y_true = label_indices(table, class_names)
    onehot = np.eye(len(class_names), dtype=np.int64)[y_true]
    fpr, tpr, thresholds = roc_curve(onehot.ravel(), probabilities(table, class_names).ravel())
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    thresholds = np.minimum(thresholds, 1.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": thresholds.tolist()}


def log_evaluation(evaluation_dir: str | Path, metrics: MetricsSink, classification: ClassificationSink) -> None:
    """Log an evaluation folder's headline numbers, confusion matrix and ROC curve for the KFP UI."""
    from skinattn.registry import flatten_metrics

    evaluation_dir = Path(evaluation_dir)
    raw = json.loads((evaluation_dir / METRICS_FILE).read_text(encoding="utf-8"))
    flat = flatten_metrics(raw, str(evaluation_dir / METRICS_FILE))
    for name in UI_METRICS:
        value = flat.get(name)
        if value is not None:  # undefined (NaN) values are explained in the report, not drawn as numbers
            metrics.log_metric(name, round(float(value), 6))
    classes = list(raw["classes"])
    classification.log_confusion_matrix(classes, [[int(v) for v in row] for row in raw["confusion_matrix"]])
    roc = micro_roc(evaluation_dir / PREDICTIONS_FILE, classes)
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["threshold"])


def copy_file(source: str | Path, dest: str | Path) -> None:
    """Copy one file to an artifact path whose folder may not exist yet."""
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)


# ---------------------------------------------------------------------------- champion / challenger


def compare_with_production(
    candidate_evaluation: str | Path, prepared: str | Path, registry_root: str, metric: str
) -> tuple[str, str]:
    """``("promote" | "keep", reason)``: does the candidate beat production on ``metric``, on THIS test set?

    The production model is downloaded and evaluated on the same test split of ``prepared`` with the same
    code, so the two numbers are comparable even when the test set changed since production was registered.
    No production version yet means promote. A tie keeps the champion. ``metric`` is a flattened name
    of evaluation's metrics.json (``balanced_accuracy``, ``weighted_avg.auc``, ``macro_avg.precision``...);
    its direction comes from its name (``skinattn.registry.metric_direction``).
    """
    from skinattn.registry import Registry, compare, flatten_metrics, load_metrics

    candidate_file = Path(candidate_evaluation) / METRICS_FILE
    candidate = flatten_metrics(load_metrics(candidate_file), str(candidate_file))
    registry = Registry(registry_root)
    champion = registry.production()
    if champion is None:
        compare(candidate, None, metric)  # still refuses a metric the candidate does not have
        return PROMOTE, f"{registry.uri} has no production version yet"
    # Numbers only: the champion's predictions, figures, overlays and report would be thrown away.
    from skinattn.evaluation.run import EvaluationSettings, evaluation_metrics

    settings = EvaluationSettings(split="test", n_bootstrap=0, progress=False)
    champion_metrics = flatten_metrics(evaluation_metrics(registry.fetch(champion), prepared, settings),
                                       f"production {champion.version}")  # fmt: skip
    result = compare(candidate, champion_metrics, metric, candidate_name="candidate",
                     champion_name=f"production version {champion.version}")  # fmt: skip
    verdict = PROMOTE if result.better else KEEP
    reason = (
        f"candidate {metric}={result.candidate:.6g} vs production {champion.version} {metric}={result.champion:.6g} "
        f"on the same test set ({result.direction} is better): {verdict}"
    )
    return verdict, reason


def register_and_promote(
    model_dir: str | Path, evaluation_dir: str | Path, prepared: str | Path, registry_root: str, metric: str, run_id: str
) -> dict[str, Any]:
    """Register the model with its test metrics, then make it production; returns version and decision.

    Called only after :func:`compare_with_production` said promote. When production was measured on the
    same data (equal fingerprints), the registry's own race-safe comparison decides; otherwise the stored
    numbers are not comparable and the gate's decision (made on this test set) is applied with
    ``force=True``, which the production log records.
    """
    from skinattn.models.weights import read_card
    from skinattn.registry import Registry, fingerprint_manifest

    registry = Registry(registry_root)
    params = (read_card(model_dir).get("metadata") or {}).get("config") or {}
    fingerprint = fingerprint_manifest(prepared)
    version = registry.register(
        model_dir, Path(evaluation_dir) / METRICS_FILE, params=params, data_fingerprint=fingerprint, run_id=run_id
    )
    champion = registry.production()
    same_data = champion is not None and champion.data_fingerprint == fingerprint
    decision = registry.promote(version.version, metric, force=champion is not None and not same_data)
    print(f"registered {version.version} in {registry.uri}: {decision.reason}")
    return {"version": version.version, "promoted": decision.promoted, "reason": decision.reason}



def ablation_table_step(evaluation_dirs: list[str], markdown_out: str | Path, csv_out: str | Path) -> str:
    """Write the paper's Table 1 (see ``skinattn.evaluation.ablation``) as Markdown and CSV; return the Markdown."""
    from skinattn.evaluation.ablation import ablation_table_from_folders
    from skinattn.evaluation.tables import to_csv_text, to_markdown
    from skinattn.fileio import atomic_open

    table = ablation_table_from_folders(evaluation_dirs)
    markdown = to_markdown(table)
    for path, text in ((markdown_out, markdown), (csv_out, to_csv_text(table))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, newline="") as handle:
            handle.write(text)
    print(markdown)
    return markdown


# ------------------------------------------------------------------------------------- batch scoring

SHARD_LISTING_FILE = "listing.json"  # in the shards folder: what was listed and how it was split
SHARD_RESULT_FILE = "shard.json"  # in each scored shard's folder: which shard it is, its counts
SHARD_PREDICTIONS_FILE = "predictions.parquet"  # typed and compact between tasks; the merge picks the final format
SCORE_OUTPUT_FORMATS = ("csv", "parquet")
# Pod logs are not terminals: one progress line every this many seconds instead of ten a second.
POD_PROGRESS_INTERVAL_S = "30"


def resolve_scoring_model(model: str, registry_root: str) -> str:
    """The model every shard uses: a model folder as given, or the registry version that ``model`` names now.

    ``production`` and ``latest`` are resolved ONCE, here, so that a promotion while the shards run cannot
    give two shards two different models (the merge would refuse them).
    """
    from skinattn.models.weights import CARD_FILE
    from skinattn.registry import Registry

    if (Path(model) / CARD_FILE).is_file():
        print(f"model folder {model}")
        return model
    record = Registry(registry_root or None).get(model)
    print(f"model {model!r} in {registry_root} is {record.version}")
    return record.version


def shard_archive_step(source_uri: str, num_shards: int, out: str | Path) -> list[str]:
    """List ``source_uri`` once and write one manifest per shard into ``out``; return the manifests' file
    names in shard order (what the pipeline fans out over)."""
    from skinattn.fileio import write_json
    from skinattn.scoring import list_archive, write_shard_manifests

    count = int(num_shards)  # kfp.local hands numbers over as floats
    if count < 1:
        raise DataError(f"num_shards must be at least 1, got {num_shards}")
    listing = list_archive(source_uri)
    manifests = write_shard_manifests(listing, count, out)
    summary = {
        "source": source_uri,
        "listed": len(listing.items),
        "refused_while_listing": sum(1 for item in listing.items if item.refusal),
        "labelled": sum(1 for item in listing.items if item.label),
        "skipped_non_images": len(listing.skipped),
        "labels_file": listing.labels_file,
        "num_shards": count,
        "shards": [path.name for path in manifests],
    }
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

    from skinattn.fileio import write_json
    from skinattn.scoring import ScoreSettings, ShardManifest, score_shard

    gpus = int(gpus)
    if gpus not in (0, 1):
        raise DataError(f"gpus_per_shard={gpus}: a shard is scored on one device; use 0 (CPU) or 1 and more shards")
    if gpus and not torch.cuda.is_available():
        print("warning: gpus_per_shard=1 but no CUDA device is visible; scoring this shard on the CPU", file=sys.stderr)
    os.environ.setdefault("TQDM_MININTERVAL", POD_PROGRESS_INTERVAL_S)
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


def _shards_in_order(shards_dir: Path, scored_dirs: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    """The scored shard folders and their shard.json, sorted by shard index; refuses a missing, repeated or
    foreign shard.

    The fan-in of a ParallelFor does not promise iteration order, and concatenating shards in shard order
    is what makes the merged file equal to an unsharded run.
    """
    listing = json.loads((shards_dir / SHARD_LISTING_FILE).read_text(encoding="utf-8"))
    expected = int(listing["num_shards"])
    by_index: dict[int, tuple[Path, dict[str, Any]]] = {}
    for folder in map(Path, scored_dirs):
        info = json.loads((folder / SHARD_RESULT_FILE).read_text(encoding="utf-8"))
        index, count = int(info["index"]), int(info["count"])
        if count != expected or info["source"] != listing["source"]:
            raise DataError(f"{folder}: shard {index}/{count} of {info['source']} does not belong to this listing "
                            f"({expected} shard(s) of {listing['source']})")  # fmt: skip
        if index in by_index:
            raise DataError(f"shard {index} was scored twice ({by_index[index][0]} and {folder}); refusing to merge")
        by_index[index] = (folder, info)
    missing = sorted(set(range(expected)) - set(by_index))
    if missing:
        raise DataError(f"shard(s) {missing} of {expected} have no output; refusing to merge a partial result")
    return [by_index[i] for i in range(expected)]


def merge_shards_step(
    shards_dir: str | Path, scored_dirs: list[str], out_dir: str | Path, output_format: str, bootstrap: int
) -> dict[str, Any]:
    """Merge the scored shards, in shard order, into ``out_dir/predictions.<output_format>`` and the files
    ``skinattn score`` writes beside it (``_isic.csv``, ``_errors.csv``, ``_summary.json``, ``_eval/`` when
    the archive carries labels); returns the summary plus the listing's counts."""
    from skinattn.fileio import write_json
    from skinattn.scoring import ScoreSettings, merge_outputs

    fmt = output_format.strip().lower().lstrip(".")
    if fmt not in SCORE_OUTPUT_FORMATS:
        raise DataError(f"output_format={output_format!r}: choose one of {', '.join(SCORE_OUTPUT_FORMATS)}")
    shards_dir = Path(shards_dir)
    ordered = _shards_in_order(shards_dir, scored_dirs)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = ScoreSettings(n_bootstrap=int(bootstrap), progress=False)
    shard_files = [folder / SHARD_PREDICTIONS_FILE for folder, _ in ordered]
    result = merge_outputs(shard_files, Path(out_dir) / f"predictions.{fmt}", settings)
    listing = json.loads((shards_dir / SHARD_LISTING_FILE).read_text(encoding="utf-8"))
    summary = json.loads(result.summary.read_text(encoding="utf-8"))
    summary |= {key: listing[key] for key in ("source", "listed", "skipped_non_images", "labels_file", "num_shards")}
    summary["merged_from"] = [info["shard"] for _, info in ordered]
    if summary["scored"] + summary["errors"] != listing["listed"]:
        raise DataError(f"the shards account for {summary['scored'] + summary['errors']} image(s) but "
                        f"{listing['listed']} were listed; refusing an incomplete merge")  # fmt: skip
    # The folder is published and downloaded elsewhere: name its files relative to it in the file...
    relative = {key: None if summary[key] is None else Path(summary[key]).name
                for key in ("predictions", "isic_predictions", "errors_file", "evaluation")}  # fmt: skip
    write_json(result.summary, summary | relative)
    return summary  # ...and return the paths of this machine to the caller


def write_scoring_summary(summary: dict[str, Any], out: str | Path) -> str:
    """Write (and return) the Markdown the KFP UI shows for a merged run: counts, model version, errors,
    and the evaluation's headline and per-class table when the archive carried labels."""
    from skinattn.fileio import atomic_open

    evaluation_dir = summary.get("evaluation")
    lines = [
        "# Batch scoring",
        "",
        "| | |",
        "| --- | --- |",
        f"| source | `{summary['source']}` |",
        f"| model version | `{summary['model_version']}` |",
        f"| images listed | {summary['listed']} |",
        f"| scored | {summary['scored']} |",
        f"| errors (refused or unreadable) | {summary['errors']} |",
        f"| labelled | {summary['labelled']} |",
        f"| non-image files skipped | {summary['skipped_non_images']} |",
        f"| shards | {summary['num_shards']} |",
    ]
    if evaluation_dir is not None:
        metrics = json.loads((Path(evaluation_dir) / METRICS_FILE).read_text(encoding="utf-8"))
        lines += ["", f"## Evaluation on the {metrics['num_samples']} labelled image(s)", ""]
        lines += [f"accuracy {metrics['accuracy']:.4f}, balanced accuracy {metrics['balanced_accuracy']:.4f}", ""]
        lines.append((Path(evaluation_dir) / TABLE_FILE).read_text(encoding="utf-8").strip())
    text = "\n".join(lines) + "\n"
    with atomic_open(out) as handle:  # creates the artifact's folder when needed
        handle.write(text)
    return text


def publish_folder(folder: str | Path, dest_uri: str) -> list[str]:
    """Copy every file of ``folder`` under ``dest_uri`` (a folder, or ``s3://bucket/prefix``); return the
    destinations. Existing files of the same names are replaced (a nightly run refreshes one place)."""
    from skinattn.data.sources import S3_SCHEME, parse_s3_uri, s3_client
    from skinattn.fileio import atomic_path

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    written = []
    if dest_uri.startswith(S3_SCHEME):
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = parse_s3_uri(dest_uri)
        client = s3_client()
        for path in files:
            key = "/".join(part for part in (prefix.strip("/"), path.relative_to(folder).as_posix()) if part)
            try:
                client.upload_file(str(path), bucket, key)
            except (S3UploadFailedError, BotoCoreError, ClientError) as exc:
                raise DataError(f"cannot copy {path.name} to {S3_SCHEME}{bucket}/{key}: {exc}") from exc
            written.append(f"{S3_SCHEME}{bucket}/{key}")
    else:
        for path in files:
            target = Path(dest_uri) / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                shutil.copyfile(path, tmp)
            written.append(str(target))
    return written
