"""The batch-scoring pipeline: score a whole ISIC Archive collection with one registered model, in shards.

::

    validate-batch-scoring-run ─┬─▶ resolve-scoring-model ──┐   (production/latest → v7, once per run)
                                └─▶ shard-archive ──────────┴─▶ If(gpus_per_shard > 0) / Else:
                                      ParallelFor(shard manifests) { score-shard | score-shard-gpu }
                                        ─▶ Collected ─▶ merge-scores

``gpus_per_shard`` picks the scoring component: 0 runs ``score-shard`` in the CPU image on any node, 1 runs
``score-shard-gpu`` in the GPU image on the GPU node pool. The choice is a ``dsl.If``/``dsl.Else`` on the
parameter around the whole fan-out + merge (kfp.local cannot run ``dsl.OneOf``, which a single merge after
two alternative branches would need), so the compiled YAML holds both branches and a run executes one.

Outputs of ``merge-scores``: ``predictions`` (folder, the layout of ``skinattn score``), ``errors`` (CSV),
``summary`` (Markdown), and ``metrics`` + ``classification`` when the archive carries labels. Caching,
retries and time limits are chosen per task below; docs/pipelines.md gives the reasons.
"""

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask

from skinattn_components.scoring import merge_scores, resolve_scoring_model, score_shard, score_shard_gpu, shard_archive
from skinattn_components.validation import validate_batch_scoring_run
from skinattn_pipelines._tasks import (
    on_gpu_pool, retry_transient, validation_first, validation_settings, with_s3, with_step_resources, with_timeout,
)  # fmt: skip

PIPELINE_NAME = "skinattn-batch-scoring"
# At most this many shards are scored at once (a ParallelFor limit must be a constant, not a parameter);
# more shards than this simply queue, so num_shards can be set for retry granularity independently.
PARALLELISM = 8
# A scoring pod decodes JPEGs in `workers` DataLoader processes and runs the model in the main one.
DEFAULT_WORKERS = 4
SCORE_CPU_REQUEST, SCORE_CPU_LIMIT = "5", "8"  # DEFAULT_WORKERS decoders + the main process
SCORE_MEMORY_REQUEST, SCORE_MEMORY_LIMIT = "6G", "16G"  # model, prefetched batches, one chunk of results
# DataLoader workers pass batches through shared memory; a container's default /dev/shm is 64 MB.
SCORE_SHM_SIZE_LIMIT = "2Gi"


def _with_score_resources(task: PipelineTask) -> PipelineTask:
    """CPU and memory for a scoring pod, and a memory-backed /dev/shm for its DataLoader workers."""
    task.set_cpu_request(SCORE_CPU_REQUEST).set_cpu_limit(SCORE_CPU_LIMIT)
    task.set_memory_request(SCORE_MEMORY_REQUEST).set_memory_limit(SCORE_MEMORY_LIMIT)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory",
                               size_limit=SCORE_SHM_SIZE_LIMIT)  # fmt: skip
    return task


def _score_and_merge(*, gpus, shard_task, model_task, registry_root, batch_size, workers, output_format,
                     output_uri, bootstrap) -> None:  # fmt: skip
    """Fan out over the shard manifests, score each, and merge the shards' outputs (one branch's tasks).

    ``gpus`` is None for the CPU branch, else the ``gpus_per_shard`` parameter (its step refuses more than
    one: a shard is scored on one device).
    """
    with dsl.ParallelFor(shard_task.outputs["Output"], parallelism=PARALLELISM, name="shards") as shard_name:
        common = {
            "shards": shard_task.outputs["shards"], "shard_name": shard_name, "model": model_task.outputs["Output"],
            "registry_root": registry_root, "batch_size": batch_size, "workers": workers,
        }  # fmt: skip
        score_task = score_shard(**common) if gpus is None else score_shard_gpu(**common, gpus=gpus)
        # A pure function of its inputs (the shard manifest and a concrete model version): cached. The
        # listing is never cached, so a hit needs the same listing artifact (a retried run), not a new run.
        score_task.set_caching_options(True)
        _with_score_resources(with_s3(score_task))
        if gpus is not None:
            on_gpu_pool(score_task, gpus)
        # S3 reads and preemptible nodes fail transiently; a retried pod scores its shard afresh (its
        # in-progress chunks lived in the lost pod), which is why shards should stay small.
        retry_transient(score_task, retries=2, first_wait="60s")
        with_timeout(score_task, "score")

    merge_task = merge_scores(
        shards=shard_task.outputs["shards"], scored=dsl.Collected(score_task.outputs["scored"]),
        output_format=output_format, output_uri=output_uri, bootstrap=bootstrap,
    )  # fmt: skip
    # Not cached: it may write to output_uri, outside the pipeline root, which a cache hit would skip. Not
    # retried: its refusals (a missing or foreign shard) are deterministic, and a retried run from the UI
    # finds every scored shard in the cache.
    merge_task.set_caching_options(False)
    with_timeout(with_s3(with_step_resources(merge_task)), "step")


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Score every image of an archive (folder, .zip or s3:// prefix in the isic image download layout) "
    "with one registered model, in parallel shards on CPU or GPU, and merge into one predictions file and "
    "one errors file (plus the evaluation when the archive carries diagnoses).",
)
def batch_scoring_pipeline(
    source_uri: str = "s3://skinattn/archives/isic",
    model: str = "production",
    registry_root: str = "s3://skinattn/registry",
    num_shards: int = 8,
    batch_size: int = 64,
    workers: int = DEFAULT_WORKERS,
    gpus_per_shard: int = 0,
    output_format: str = "parquet",
    output_uri: str = "",
    bootstrap: int = 1000,
):
    """Score every image of an archive with one model version, in shards, and merge the results.

    Args:
        source_uri: The archive: a folder or .zip the pods can read, or s3://bucket/prefix, in the
            `isic image download` layout or plain images (must exist and not be empty; checked first).
        model: The model: production or latest (resolved once per run to a version), a version such as v7,
            or a model folder the pods can read.
        registry_root: Registry that model names a version of: a folder or s3://bucket/prefix.
        num_shards: Number of shards the archive is split into, at least 1; at most 8 are scored at once,
            and a failed shard is retried alone.
        batch_size: Images per forward pass, at least 1.
        workers: DataLoader processes decoding images in each scoring pod, 0 or more (0 = decode in the
            main process; the pod requests 5 CPUs).
        gpus_per_shard: 0 scores on CPU pods on any node; 1 gives each shard one GPU on the GPU node pool.
            More is refused (a shard runs on one device: use more shards).
        output_format: File format of the merged predictions: parquet or csv.
        output_uri: Optional folder or s3://bucket/prefix that also receives a copy of the merged
            predictions folder (files of the same names are replaced); empty = only the run's artifacts.
        bootstrap: Bootstrap resamples for the evaluation's confidence intervals when the archive carries
            diagnoses, 0 or more (0 = none).
    """
    validate_task = validation_first(validate_batch_scoring_run(
        source_uri=source_uri, model=model, registry_root=registry_root, num_shards=num_shards,
        batch_size=batch_size, workers=workers, gpus_per_shard=gpus_per_shard, output_format=output_format,
        output_uri=output_uri, bootstrap=bootstrap, **validation_settings(trains=False),
    ))  # fmt: skip

    # The registry's production pointer moves between runs: resolved fresh every run (no cache), ONCE,
    # and the concrete version goes to every shard, so a promotion mid-run cannot mix two models. Not
    # retried: a missing version or registry stays missing (S3 requests retry inside the client). Its
    # `scoring_model` artifact is the run's link to that registry version (lineage).
    model_task = resolve_scoring_model(model=model, registry_root=registry_root).set_caching_options(False)
    with_timeout(with_s3(with_step_resources(model_task.after(validate_task))), "check")

    # The archive behind a URI can change (new images), so it is listed afresh every run: no cache. Not
    # retried either: a wrong URI fails the same way every time.
    shard_task = shard_archive(source_uri=source_uri, num_shards=num_shards).set_caching_options(False)
    with_timeout(with_s3(with_step_resources(shard_task.after(validate_task))), "step")

    branch = {
        "shard_task": shard_task, "model_task": model_task, "registry_root": registry_root,
        "batch_size": batch_size, "workers": workers, "output_format": output_format, "output_uri": output_uri,
        "bootstrap": bootstrap,
    }  # fmt: skip
    with dsl.If(gpus_per_shard > 0, name="score-on-gpu"):
        _score_and_merge(gpus=gpus_per_shard, **branch)
    with dsl.Else(name="score-on-cpu"):
        _score_and_merge(gpus=None, **branch)
