"""Settings shared by the pipelines' tasks (GPU pool, S3 environment, /dev/shm, retries, timeouts, resources),
and the stages more than one pipeline runs (validate first, ingest → prepare, train → evaluate).

Each helper takes a task, applies one concern and returns the task, so a pipeline reads as a list of
decisions. Values come from ``components/cluster.py`` (which reads ``infra/cluster.env``), so the compiled
YAML always matches the cluster manifests (``tests/infra/test_infra_pipelines_agree.py`` checks it).
"""

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask
from kfp.dsl.pipeline_channel import PipelineChannel

from skinattn_components.cluster import gpu_node_pool, s3_settings, task_timeouts
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
    """Retry with exponential backoff (``first_wait``, doubling, at most an hour between tries).

    Only for expensive steps whose likely failure is a preempted node (train, score-shard). A step whose
    failure is deterministic (a wrong URI, a missing model version) gets none: a retry would only make a
    typo take minutes to fail. The S3 client retries its own requests (``skinattn.storage.s3``).
    """
    return task.set_retry(num_retries=retries, backoff_duration=first_wait, backoff_factor=2.0, backoff_max_duration="3600s")


def with_timeout(task: PipelineTask, kind: str) -> PipelineTask:
    """The pod's activeDeadlineSeconds for a task of ``kind`` (``check``, ``step``, ``score``, ``train``): a
    compile-time number from ``SKINATTN_TIMEOUT_*`` of infra/cluster.env, so a hung step fails and frees its
    node instead of holding it until someone notices."""
    return kubernetes.set_timeout(task, getattr(task_timeouts(), kind))


def validation_settings(*, trains: bool) -> dict[str, str | float]:
    """The compile-time values a validation component checks against: the GPU pool's resource and label,
    and for pipelines that train, the train pod's deadline in hours."""
    pool = gpu_node_pool()
    settings: dict[str, str | float] = {
        "gpu_resource": pool.resource,
        "gpu_node_selector": f"{pool.node_label_key}={pool.node_label_value}",
    }
    if trains:
        settings["train_deadline_hours"] = task_timeouts().train_hours
    return settings


def validation_first(task: PipelineTask) -> PipelineTask:
    """The run's first task: seconds of checks, never cached (the data and the cluster change between runs)
    and never retried (what it finds wrong stays wrong); every other task runs after it."""
    task.set_caching_options(False)
    return with_timeout(with_s3(with_step_resources(task)), "check")


# ---- stages that more than one pipeline runs -------------------------------------------------------------


def ingest_and_prepare(*, validated, data_uri, data_format, seed, image_size, split_protocol=None) -> PipelineTask:  # noqa: ANN001 - channels
    """ingest → prepare, after the ``validated`` task; returns the prepare task (its ``prepared`` output is
    the split, balanced set, its ``Output`` the data fingerprint that register records). ``split_protocol``
    (a pipeline parameter) is passed on when given; else prepare splits with its default (grouped).

    The collection behind a URI can change (new images), so ingest always re-reads it: no cache. No task
    retry either: a wrong URI or a broken collection fails the same way every time, and the S3 client
    already retries single requests. prepare is a deterministic function of its inputs (seeded): cached.
    """
    ingest_task = ingest(data_uri=data_uri, data_format=data_format).set_caching_options(False).after(validated)
    with_timeout(with_s3(with_step_resources(ingest_task)), "step")
    protocol = {} if split_protocol is None else {"split_protocol": split_protocol}
    prepare_task = prepare(manifest=ingest_task.outputs["manifest"], seed=seed, image_size=image_size, **protocol)
    with_timeout(with_s3(with_step_resources(prepare_task.set_caching_options(True))), "step")
    return prepare_task


def train_and_evaluate(*, prepared, arch, soft_attention, image_size, epochs, batch_size, lr, seed, gpus,
                       train_timeout_hours, bootstrap, trainer=None, nodes=1, external_test_uri=None,
                       external_test_format=None, pretrained=""):  # noqa: ANN001,ANN201 - channels  # fmt: skip
    """train (GPU pool) → evaluate on the test split of ``prepared``; returns (train stage, evaluate task).

    Both are cached (seeded functions of their inputs). GPU nodes are often preemptible: train is retried,
    and a retried pod starts the run afresh. Train has two limits: ``train_timeout_hours`` (a parameter, 0 =
    scaled with epochs), enforced inside the step with a clear message, and the pod's compile-time deadline
    as the outer bound, which the validation step keeps above the first.

    ``trainer`` (a pipeline parameter, ``pod`` or ``trainjob``) picks the train step when the run starts:
    ``train`` on one pod, or ``train-trainjob``, the launcher of a Kubeflow Trainer TrainJob of ``nodes`` x
    ``gpus`` (pipelines/_trainjob.py); the stage's ``outputs`` are those of whichever ran (``dsl.OneOf``).
    Without ``trainer``, only the pod path is compiled and the stage is the ``train`` task.

    ``external_test_uri`` / ``external_test_format`` (pipeline parameters; "" = none) make evaluate also
    evaluate the model on that external test set (issue 14); without them evaluate gets its defaults.
    ``pretrained`` (a pipeline parameter or "") names the backbone's starting weights (skinattn.models.pretrained).
    """
    settings = dict(prepared=prepared, arch=arch, soft_attention=soft_attention, image_size=image_size,
                    epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, gpus=gpus, timeout_hours=train_timeout_hours,
                    pretrained=pretrained)  # fmt: skip

    def train_on_pod() -> PipelineTask:
        train_task = train(**settings).set_caching_options(True)
        retry_transient(with_s3(with_train_resources(on_gpu_pool(train_task, gpus))), retries=2, first_wait="120s")
        return with_timeout(train_task, "train")

    if trainer is None:
        stage = train_on_pod()
    else:
        from skinattn_pipelines._trainjob import join, train_on_trainjob  # it uses this module's helpers

        with dsl.If(trainer == "trainjob", name="trainer-trainjob"):
            trainjob_task = train_on_trainjob(settings, nodes)
        with dsl.Else(name="trainer-pod"):
            pod_task = train_on_pod()
        stage = join(trainjob_task, pod_task)
    # The external test set (issue 14) is read inside evaluate: one more read, no extra step. Evaluate stays
    # cached, so a collection changed behind the same external_test_uri needs a new URI (docs/pipelines.md).
    external = {} if external_test_uri is None else {"external_test_uri": external_test_uri,
                                                     "external_test_format": external_test_format}  # fmt: skip
    evaluate_task = evaluate(model=stage.outputs["model"], prepared=prepared, bootstrap=bootstrap, **external)
    with_timeout(with_s3(with_step_resources(evaluate_task.set_caching_options(True))), "step")
    return stage, evaluate_task
