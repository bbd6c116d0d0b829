"""Settings shared by the pipelines' tasks (GPU pool, S3 environment, /dev/shm, retries, resources), and the
stages more than one pipeline runs (ingest → prepare, train → evaluate).

Each helper takes a task, applies one concern and returns the task, so a pipeline reads as a list of
decisions. Values come from ``components/cluster.py`` (which reads ``infra/cluster.env``), so the compiled
YAML always matches the cluster manifests (``tests/infra/test_infra_pipelines_agree.py`` checks it).
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.pipeline_channel import PipelineChannel

from skinattn_components.cluster import gpu_node_pool, s3_settings
from skinattn_components.data import ingest, prepare
from skinattn_components.evaluation import evaluate
from skinattn_components.training import train

# Requests are what the scheduler reserves, limits what the container may use. The train step decodes and
# augments images in DataLoader workers (up to 8 on CUDA), so it gets several cores and room for them.
TRAIN_CPU_REQUEST, TRAIN_CPU_LIMIT = "4", "8"
TRAIN_MEMORY_REQUEST, TRAIN_MEMORY_LIMIT = "16G", "32G"
# Ingest decodes every image on a thread pool; evaluate runs the model on CPU.
STEP_CPU_REQUEST, STEP_CPU_LIMIT = "1", "4"
STEP_MEMORY_REQUEST, STEP_MEMORY_LIMIT = "2G", "8G"
# DataLoader workers pass batches through shared memory; a container's default /dev/shm is 64 MB.
SHM_SIZE_LIMIT = "8Gi"


def on_gpu_pool(task: PipelineTask, gpus: int | PipelineChannel) -> PipelineTask:
    """Request ``gpus`` GPUs and tolerate/select the GPU node pool (kfp.local ignores all of it)."""
    pool = gpu_node_pool()
    task.set_accelerator_type(pool.resource).set_accelerator_limit(gpus)
    kubernetes.add_node_selector(task, label_key=pool.node_label_key, label_value=pool.node_label_value)
    kubernetes.add_toleration(task, **pool.toleration())
    return task


def with_train_resources(task: PipelineTask) -> PipelineTask:
    """CPU and memory for the train step, and a memory-backed /dev/shm for DataLoader workers and DDP."""
    task.set_cpu_request(TRAIN_CPU_REQUEST).set_cpu_limit(TRAIN_CPU_LIMIT)
    task.set_memory_request(TRAIN_MEMORY_REQUEST).set_memory_limit(TRAIN_MEMORY_LIMIT)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=SHM_SIZE_LIMIT)
    return task


def with_step_resources(task: PipelineTask) -> PipelineTask:
    """CPU and memory for the CPU steps."""
    task.set_cpu_request(STEP_CPU_REQUEST).set_cpu_limit(STEP_CPU_LIMIT)
    task.set_memory_request(STEP_MEMORY_REQUEST).set_memory_limit(STEP_MEMORY_LIMIT)
    return task


def with_s3(task: PipelineTask) -> PipelineTask:
    """Expose the S3 ConfigMap and Secret as the AWS_* variables boto3 reads.

    ``optional=True``: a cluster that keeps data and registry on volumes instead of S3 needs neither object;
    where an ``s3://`` URI is used without them, boto3 fails with a message naming the URI.
    """
    s3 = s3_settings()
    kubernetes.use_config_map_as_env(task, s3.config_map, {key: key for key in s3.config_map_keys}, optional=True)
    kubernetes.use_secret_as_env(task, s3.secret, {key: key for key in s3.secret_keys}, optional=True)
    return task


def retry_transient(task: PipelineTask, retries: int, first_wait: str) -> PipelineTask:
    """Retry with exponential backoff (``first_wait``, doubling, at most an hour between tries)."""
    return task.set_retry(num_retries=retries, backoff_duration=first_wait, backoff_factor=2.0, backoff_max_duration="3600s")


# ---- stages that more than one pipeline runs -------------------------------------------------------------


def ingest_and_prepare(*, data_uri, data_format, seed, image_size) -> PipelineTask:  # noqa: ANN001 - channels
    """ingest → prepare; returns the prepare task (its ``prepared`` output is the split, balanced set).

    The collection behind a URI can change (new images), so ingest always re-reads it: no cache; S3 and
    network hiccups are the usual failure of a step that reads thousands of objects: retried. prepare is a
    deterministic function of its inputs (seeded): cached.
    """
    ingest_task = ingest(data_uri=data_uri, data_format=data_format).set_caching_options(False)
    retry_transient(with_s3(with_step_resources(ingest_task)), retries=3, first_wait="30s")
    prepare_task = prepare(manifest=ingest_task.outputs["manifest"], seed=seed, image_size=image_size)
    with_s3(with_step_resources(prepare_task.set_caching_options(True)))
    return prepare_task


def train_and_evaluate(*, prepared, arch, soft_attention, image_size, epochs, batch_size, lr, seed, gpus,
                       bootstrap) -> tuple[PipelineTask, PipelineTask]:  # noqa: ANN001 - channels  # fmt: skip
    """train (GPU pool) → evaluate on the test split of ``prepared``; returns both tasks.

    Both are cached (seeded functions of their inputs). GPU nodes are often preemptible: train is retried,
    and a retried pod starts the run afresh.
    """
    train_task = train(
        prepared=prepared, arch=arch, soft_attention=soft_attention, image_size=image_size, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, gpus=gpus,
    ).set_caching_options(True)  # fmt: skip
    retry_transient(with_s3(with_train_resources(on_gpu_pool(train_task, gpus))), retries=2, first_wait="120s")
    evaluate_task = evaluate(model=train_task.outputs["model"], prepared=prepared, bootstrap=bootstrap)
    with_s3(with_step_resources(evaluate_task.set_caching_options(True)))
    return train_task, evaluate_task
