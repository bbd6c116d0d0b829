"""Scoring: the resumable loop over one shard, and the entry points a CLI or a pipeline calls.

- :func:`score_source` lists a source and scores all of it, or one ``--shard i/N`` of it.
- :func:`score_shard` scores the items of one :class:`ShardManifest` into one output.
- :func:`merge_outputs` merges shard outputs into the final files (and evaluates, with labels).

Every run also writes the drift report (:mod:`skinattn.scoring.drift`) against the reference stored with
the model: ``score_shard`` reads it from the model card; ``merge_outputs``, which has no model, from the
shards' drift reports, which carry it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from skinattn.errors import DataError
from skinattn.evaluation.distribution import read_reference
from skinattn.evaluation.predict import prob_column, resolve_device
from skinattn.fileio import write_json
from skinattn.inference import Predictor
from skinattn.models import read_card
from skinattn.progress import bar_options
from skinattn.scoring.checkpoint import ChunkStore
from skinattn.scoring import drift
from skinattn.scoring.dataset import ChunkBatches, ScoreImages, collate
from skinattn.scoring.evaluation_output import write_evaluation
from skinattn.scoring.listing import ScoreItem, fingerprint, list_archive
from skinattn.scoring.merge import MergedOutputs, merge_tables
from skinattn.scoring.model_source import ResolvedModel, calibration_facts, model_facts, resolve_model
from skinattn.scoring.outputs import OutputPaths
from skinattn.scoring.shards import ShardManifest, parse_shard, split_shards
from skinattn.scoring.tables import ERROR_COLUMNS, MODEL_VERSION, TOP_CLASS, prediction_columns


@dataclasses.dataclass(frozen=True)
class ScoreSettings:
    """How to score, besides what and with which model."""

    batch_size: int = 32
    workers: int = 2
    device: str = "auto"
    chunk_size: int = 512  # images per committed chunk: the most work a kill can lose
    restart: bool = False  # drop the progress of an earlier run into the same --out
    evaluate: bool = True  # write the evaluation when the archive carries labels
    n_bootstrap: int = 1000  # bootstrap resamples of the evaluation's confidence intervals
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class ScoreResult:
    predictions: Path
    isic: Path
    errors: Path
    summary: Path
    evaluation: Path | None
    model_version: str
    scored: int
    failed: int
    drift: Path  # the drift report (JSON); its figure is beside it (OutputPaths.drift_figure)
    drift_level: str  # none, moderate, major, no-reference or no-images (see skinattn.scoring.drift)


def _chunk_frames(items: Sequence[ScoreItem], chunk: range, probs: np.ndarray, errors: dict[int, str],
                  names: Sequence[str], version: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    ok = [p for p in chunk if p not in errors]
    rows = [items[p] for p in ok]
    block = probs[[p - chunk.start for p in ok]] if ok else np.zeros((0, len(names)))
    frame = pd.DataFrame({"image_id": [i.image_id for i in rows], "file": [i.file for i in rows], "label": [i.label for i in rows]})
    for j, name in enumerate(names):
        frame[prob_column(name)] = block[:, j]
    frame[TOP_CLASS] = [names[k] for k in block.argmax(axis=1)] if ok else []
    frame[MODEL_VERSION] = version
    failed = pd.DataFrame(
        [(items[p].file, items[p].image_id, errors[p]) for p in sorted(errors)], columns=list(ERROR_COLUMNS)
    )
    return frame[prediction_columns(names)], failed


@torch.inference_mode()
def score_items(items: Sequence[ScoreItem], model: ResolvedModel, store: ChunkStore, settings: ScoreSettings) -> int:
    """Score every item of the chunks ``store`` has not committed yet, committing each chunk when complete.

    Returns how many chunks an earlier, interrupted run had already committed.
    """
    device = resolve_device(settings.device)
    predictor = Predictor(model.directory, device)
    names = list(predictor.config.class_names)
    size = store.chunk_size
    done = store.completed()
    chunks = -(-len(items) // size)
    pending = [range(k * size, min((k + 1) * size, len(items))) for k in range(chunks) if k not in done]
    if done:
        print(f"resuming: {len(done)} of {chunks} chunk(s) already committed in {store.folder}", file=sys.stderr)
    if not pending:
        return len(done)
    loader = DataLoader(
        ScoreImages(items, predictor.config),
        batch_sampler=ChunkBatches(pending, settings.batch_size),
        num_workers=settings.workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    chunk: range | None = None
    probs = np.zeros((0, len(names)))
    errors: dict[int, str] = {}
    remaining = 0
    with tqdm(total=sum(map(len, pending)), unit="img", desc="score", disable=not settings.progress,
              **bar_options()) as bar:
        for batch in loader:
            first = batch.positions[0] if batch.positions else batch.errors[0][0]
            if chunk is None or first not in chunk:  # batches never straddle chunks (ChunkBatches)
                chunk = range(first // size * size, min(first // size * size + size, len(items)))
                probs, errors, remaining = np.zeros((len(chunk), len(names))), {}, len(chunk)
            if batch.images is not None:
                logits = predictor.model(batch.images.to(device, non_blocking=True))
                probs[[p - chunk.start for p in batch.positions]] = predictor.model.probabilities(logits).cpu().numpy()
            errors.update(batch.errors)
            remaining -= len(batch.positions) + len(batch.errors)
            bar.update(len(batch.positions) + len(batch.errors))
            if remaining == 0:
                store.commit(chunk.start // size, *_chunk_frames(items, chunk, probs, errors, names, model.version))
    return len(done)


def _finish(merged: MergedOutputs, settings: ScoreSettings, info: dict[str, Any], reference: dict[str, Any] | None,
            no_reference: str = drift.NO_REFERENCE) -> ScoreResult:  # fmt: skip
    """Evaluate (when there are labels and it is asked for), write the drift report and the summary."""
    report = drift.compare(reference, merged.distribution, merged.errors, no_reference=no_reference)
    drift.write_drift(report, merged.paths.drift, merged.paths.drift_figure)
    evaluation = None
    if settings.evaluate and not merged.labelled.empty:
        metrics = write_evaluation(merged.labelled, merged.class_names, merged.paths.evaluation, info,
                                   n_bootstrap=settings.n_bootstrap, progress=settings.progress)
        evaluation = merged.paths.evaluation if metrics is not None else None
    version = merged.model_versions[0] if merged.model_versions else info.get("model_version", "")
    summary = info | {
        "model_version": version,
        "scored": merged.scored,
        "errors": merged.errors,
        "labelled": len(merged.labelled),
        "predictions": str(merged.paths.predictions),
        "isic_predictions": str(merged.paths.isic),
        "errors_file": str(merged.paths.errors),
        "evaluation": None if evaluation is None else str(evaluation),
        "drift": drift.summary_entry(report),
        "drift_file": str(merged.paths.drift),
        "drift_figure": str(merged.paths.drift_figure),
    }
    write_json(merged.paths.summary, summary)
    return ScoreResult(merged.paths.predictions, merged.paths.isic, merged.paths.errors, merged.paths.summary,
                       evaluation, version, merged.scored, merged.errors, merged.paths.drift, report["level"])


def score_shard(
    shard: ShardManifest | str | os.PathLike[str],
    out: str | os.PathLike[str],
    model: str = "production",
    settings: ScoreSettings | None = None,
    registry_root: str | None = None,
    extra_info: dict[str, Any] | None = None,
) -> ScoreResult:
    """Score one shard (a manifest or its JSON path) into ``out`` (.csv or .parquet), resumably.

    ``model`` is a model folder or a registry version (``v3``, ``latest``, ``production``). A pipeline
    should resolve ``production`` once and pass the version to every shard, so that a promotion during
    the run cannot mix two models (the merge refuses mixed versions).
    """
    settings = settings or ScoreSettings()
    manifest = shard if isinstance(shard, ShardManifest) else ShardManifest.read(shard)
    paths = OutputPaths.for_out(out)
    started = time.monotonic()
    resolved = resolve_model(model, registry_root)
    plan = {
        "source": manifest.source,
        "shard": f"{manifest.index}/{manifest.count}",
        "items": len(manifest.items),
        "fingerprint": fingerprint(manifest.items),
        "chunk_size": settings.chunk_size,
        "model_version": resolved.version,
    }
    store = ChunkStore(paths.work, plan, restart=settings.restart)
    resumed = score_items(manifest.items, resolved, store, settings)
    chunks = -(-len(manifest.items) // store.chunk_size)
    if chunks:
        merged = merge_tables(store.parts(chunks), out)
    else:  # an empty shard: valid, empty outputs
        merged = _empty_outputs(out, resolved)
    card = read_card(resolved.directory)
    info = (extra_info or {}) | {
        "source": manifest.source,
        "shard": plan["shard"],
        "model": resolved.origin,
        "model_version": resolved.version,
        # Architecture, SA, input size and the training run's figures: the model by more than path and hash.
        **model_facts(card),
        # The temperature applied to every probability of this run (Predictor -> SoftAttentionNet.probabilities).
        **calibration_facts(card),
        "listed": len(manifest.items),
        "chunks_resumed": resumed,
        "seconds": round(time.monotonic() - started, 3),
    }
    reference = read_reference(card)
    result = _finish(merged, dataclasses.replace(settings, evaluate=settings.evaluate and manifest.count == 1), info,
                     reference)  # fmt: skip
    store.remove()  # only now: the outputs are in place, the progress is no longer needed
    return result


def _empty_outputs(out: str | os.PathLike[str], model: ResolvedModel) -> MergedOutputs:
    from skinattn.scoring.tables import write_table

    names = list(read_card(model.directory)["config"]["class_names"])
    predictions, errors = _chunk_frames([], range(0), np.zeros((0, len(names))), {}, names, model.version)
    work = OutputPaths.for_out(out).work
    pair = (write_table(predictions, work / "empty.csv"), write_table(errors, work / "empty.errors.csv"))
    return merge_tables([pair], out)


def score_source(
    source: str,
    out: str | os.PathLike[str],
    model: str = "production",
    settings: ScoreSettings | None = None,
    shard: str | None = None,
    registry_root: str | None = None,
) -> ScoreResult:
    """List ``source`` (folder, .zip or s3:// prefix) and score it, or only shard ``"i/N"`` of it."""
    index, count = parse_shard(shard) if shard else (0, 1)  # a bad --shard fails before any listing
    listing = list_archive(source)
    manifest = split_shards(listing, count)[index]
    info = {"skipped_non_images": len(listing.skipped), "labels_file": listing.labels_file}
    return score_shard(manifest, out, model, settings, registry_root, extra_info=info)


def merge_outputs(
    shard_predictions: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: ScoreSettings | None = None,
) -> ScoreResult:
    """Merge shard outputs (predictions files; each one's errors file beside it) into ``out``, in order,
    then evaluate when the rows carry labels."""
    settings = settings or ScoreSettings()
    pairs = [(Path(p), OutputPaths.errors_beside(p)) for p in shard_predictions]
    merged = merge_tables(pairs, out)
    reference, no_reference = _shards_reference(shard_predictions)
    info = {"merged_from": [str(p) for p in shard_predictions]} | _shards_model_facts(shard_predictions)
    return _finish(merged, settings, info, reference, no_reference)


def _shards_model_facts(shard_predictions: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
    """The ``model_*`` facts (:func:`model_facts`) the first shard's summary carries: the merge has no model
    to read, and every shard scored with the same one (the merge checks the versions). Empty when that
    summary is missing or older than the facts."""
    for predictions in shard_predictions[:1]:
        try:
            summary = json.loads(OutputPaths.for_out(predictions).summary.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
        if not isinstance(summary, dict):
            return {}
        return {name: value for name, value in summary.items() if name.startswith("model_") and name != "model_version"}
    return {}


def _shards_reference(shard_predictions: Sequence[str | os.PathLike[str]]) -> tuple[dict[str, Any] | None, str]:
    """The model's reference as the shards' drift reports carry it (the merge has no model to read), and
    what to say when there is none."""
    references = []
    for predictions in shard_predictions:
        path = OutputPaths.drift_beside(predictions)
        try:
            references.append(json.loads(path.read_text(encoding="utf-8")).get("reference"))
        except (OSError, json.JSONDecodeError, AttributeError):
            return None, (f"no drift report beside {predictions} (scored by an older skinattn?): "
                          "no reference to compare with")
    if any(r != references[0] for r in references[1:]):
        raise DataError("the shards' drift reports carry different model references; score every shard with one model")
    return (references[0] if references else None), drift.NO_REFERENCE
