"""The train step on Kubeflow Trainer (``trainer=trainjob``), and how it joins the pod path.

A run chooses its trainer with the ``trainer`` parameter; the compiled pipeline holds both::

    dsl.If(trainer == "trainjob")  ─▶ train-trainjob   (launcher pod, CPU image, no GPU; TrainJob of nodes x gpus)
    dsl.Else                       ─▶ train            (one pod on the GPU node pool, torchrun on its GPUs)
    dsl.OneOf(model, curves)       ─▶ evaluate, register... (written once, whichever branch ran)

Why two components under If/Else rather than one that branches inside: the GPU request, node pool and
image of a task are fixed in the compiled pipeline, and the launcher must not hold (or wait for) a GPU
node, while the pod path must; in the UI the branch that ran shows by name (``train`` or
``train-trainjob``) with the other one skipped, and the steps after it appear once.

kfp.local joins artifact outputs of such branches only with the shim of ``pipelines/_kfp_local.py``
(installed by ``run_local``); a cluster's KFP backend does it natively.
"""

import dataclasses
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import PipelineTask

from skinattn_components.trainjob import train_trainjob, trainjob_placement
from skinattn_pipelines import _tasks

# The values of the ``trainer`` parameter.
TRAINERS = ("pod", "trainjob")
# The launcher pod learns its name, UID and namespace from the Downward API: it creates the TrainJob in its
# own namespace and makes itself the owner (skinattn/steps/trainjob.py reads these names).
POD_FIELDS = {
    "SKINATTN_POD_NAME": "metadata.name",
    "SKINATTN_POD_UID": "metadata.uid",
    "SKINATTN_POD_NAMESPACE": "metadata.namespace",
}


@dataclasses.dataclass(frozen=True)
class TrainStage:
    """The train step's outputs whichever trainer ran (``outputs[name]`` like a task's), and both tasks."""

    outputs: dict[str, Any]
    pod: PipelineTask
    trainjob: PipelineTask


def placement() -> str:
    """The trainer nodes' settings, with the pod path's per-node resources (pipelines/_tasks.py)."""
    return trainjob_placement(
        cpu_request=_tasks.TRAIN_CPU_REQUEST, cpu_limit=_tasks.TRAIN_CPU_LIMIT,
        memory_request=_tasks.TRAIN_MEMORY_REQUEST, memory_limit=_tasks.TRAIN_MEMORY_LIMIT,
        shm_size=_tasks.SHM_SIZE_LIMIT,
    )  # fmt: skip


def train_on_trainjob(settings: dict[str, Any], nodes: Any) -> PipelineTask:  # noqa: ANN401 - a channel
    """The launcher task: ``train``'s inputs (``settings``) plus ``nodes``; light resources, the S3
    variables (it reads the model from S3), its own identity, the train step's retries and deadline.

    Retried like the pod path (a preempted node fails the TrainJob; a retry creates a new one and starts
    afresh). Cached like it: the placement (image, pool, resources) is an input, so changing it retrains.
    """
    task = train_trainjob(**settings, nodes=nodes, placement=placement()).set_caching_options(True)
    _tasks.with_s3(_tasks.with_step_resources(task))
    for env_name, field_path in POD_FIELDS.items():
        kubernetes.use_field_path_as_env(task, env_name=env_name, field_path=field_path)
    _tasks.retry_transient(task, retries=2, first_wait="120s")
    return _tasks.with_timeout(task, "train")


def join(trainjob_task: PipelineTask, pod_task: PipelineTask) -> TrainStage:
    """One channel per output of ``train`` (``dsl.OneOf`` of the If and Else branches, in that order); a
    KeyError here means ``train-trainjob`` lacks an output that ``train`` has (add it there)."""
    outputs = {name: dsl.OneOf(trainjob_task.outputs[name], pod_task.outputs[name]) for name in pod_task.outputs}
    return TrainStage(outputs=outputs, pod=pod_task, trainjob=trainjob_task)
