"""Batch-scoring components: resolve the model once, list + shard the archive, score one shard, merge.

See components/data.py for the pattern. Two notes specific to these:

- ``resolve_scoring_model`` and ``shard_archive`` each have ONE return value (beside one artifact, so the
  pipeline reads it as ``task.outputs["Output"]``): a single return value resolves as a ParallelFor item
  list or a task argument both on a cluster and under kfp.local (kfp 2.17), where a field of a NamedTuple
  output does not always.
- Scoring has a CPU and a GPU component with the same body: the image is fixed when a component is
  defined, and the CPU image has no CUDA build of torch. The pipeline picks one with ``dsl.If``.
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from typing import List

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from skinattn_components.image import component_image, gpu_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def resolve_scoring_model(model: str, registry_root: str, scoring_model: Output[Model]) -> str:
    """The concrete registry version (``v7``) that ``model`` (``production``, ``latest``, ``v7``) names now,
    or ``model`` itself when it is a model folder; every shard is scored with this one model.
    ``scoring_model`` records it as ``register`` records a new version (components/registry.py): metadata
    ``registry_uri``, version, metrics, data fingerprint; the file is the version's record."""
    from skinattn.steps import scoring as steps

    pinned = steps.pin_scoring_model(model, registry_root, record_out=scoring_model.path)
    scoring_model.metadata.update(pinned["lineage"])
    return pinned["model"]


@dsl.component(base_image=component_image(), install_kfp_package=False)
def shard_archive(source_uri: str, num_shards: int, shards: Output[Dataset]) -> List[str]:
    """List the archive (folder, .zip or s3:// prefix) once and write one manifest per shard into
    ``shards`` (plus listing.json); returns the manifest file names in shard order."""
    from skinattn.steps import scoring as steps

    names = steps.shard_archive_step(source_uri, num_shards, shards.path)
    shards.metadata.update({"source": source_uri, "num_shards": len(names)})
    return names


@dsl.component(base_image=component_image(), install_kfp_package=False)
def score_shard(
    shards: Input[Dataset],
    shard_name: str,
    model: str,
    registry_root: str,
    batch_size: int,
    workers: int,
    scored: Output[Dataset],
):
    """Score one shard on the CPU: ``scored`` holds predictions.parquet, its _isic/_errors/_summary files
    and shard.json (index, counts, model version)."""
    from skinattn.steps import scoring as steps

    info = steps.score_shard_step(shards.path, shard_name, model, registry_root, scored.path,
                                  batch_size=batch_size, workers=workers, gpus=0)  # fmt: skip
    scored.metadata.update({k: info[k] for k in ("shard", "scored", "errors", "model_version")})


@dsl.component(base_image=gpu_image(), install_kfp_package=False)
def score_shard_gpu(
    shards: Input[Dataset],
    shard_name: str,
    model: str,
    registry_root: str,
    batch_size: int,
    workers: int,
    gpus: int,
    scored: Output[Dataset],
):
    """Score one shard on the task's GPU (same outputs as ``score_shard``); ``gpus`` must be 1."""
    from skinattn.steps import scoring as steps

    info = steps.score_shard_step(shards.path, shard_name, model, registry_root, scored.path,
                                  batch_size=batch_size, workers=workers, gpus=gpus)  # fmt: skip
    scored.metadata.update({k: info[k] for k in ("shard", "scored", "errors", "model_version")})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def merge_scores(
    shards: Input[Dataset],
    scored: Input[List[Dataset]],
    output_format: str,
    output_uri: str,
    bootstrap: int,
    predictions: Output[Dataset],
    errors: Output[Dataset],
    summary: Output[Markdown],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
):
    """Merge the shards in shard order. ``predictions`` is a folder laid out like ``skinattn score``'s output
    (predictions.<format>, predictions_isic.csv, predictions_errors.csv, predictions_summary.json and,
    when the archive carries labels, predictions_eval/); ``errors`` is the errors CSV; ``summary`` the
    counts, model version, drift against the model's validation reference (also predictions_drift.json and
    predictions_drift.png) and evaluation; ``metrics`` gets the drift numbers (class and confidence PSI,
    chi-square p-value, error share, level 0/1/2) and, with labels, the evaluation's; ``classification``
    is logged only with labels.
    A non-empty ``output_uri`` (folder or s3:// prefix) also receives a copy of the ``predictions`` folder."""
    from skinattn.steps import scoring as steps
    from skinattn.steps.evaluation import copy_file, log_evaluation
    from skinattn.storage import publish_folder

    result = steps.merge_shards_step(shards.path, [s.path for s in scored], predictions.path,
                                     output_format, bootstrap)  # fmt: skip
    copy_file(result["errors_file"], errors.path)
    for name, value in steps.drift_metrics(result).items():
        metrics.log_metric(name, value)
    evaluation = result["evaluation"]
    if evaluation is not None:
        log_evaluation(evaluation, metrics, classification)
    steps.write_scoring_summary(result, summary.path)
    counts = {k: result[k] for k in ("scored", "errors", "labelled", "model_version", "source")}
    counts["drift"] = result["drift"]["level"]
    predictions.metadata.update(counts)
    errors.metadata.update({"errors": result["errors"]})
    if output_uri:
        published = publish_folder(predictions.path, output_uri)
        print(f"copied {len(published)} file(s) to {output_uri}")
