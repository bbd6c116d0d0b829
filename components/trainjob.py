"""The train step as a Kubeflow Trainer TrainJob (``trainer=trainjob``): a light launcher in the CPU image.

``train-trainjob`` takes the same inputs as ``train`` (components/training.py) plus ``nodes`` and
``placement``, and gives the same outputs (``model``, ``curves``), so everything after the train step is
the same whichever trainer ran (pipelines/_tasks.py joins the two with ``dsl.OneOf``). Its pod needs no GPU:
it creates a TrainJob of ``nodes`` x ``gpus`` running in the GPU image on the GPU node pool, follows it,
and copies the model back (skinattn/steps/trainjob.py). ``placement`` is fixed when the pipeline is compiled
(:func:`trainjob_placement`, from infra/image.env and infra/cluster.env): the component body imports only
skinattn, and the trainer pods must match the conventions the checks compare.
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Model, Output

from skinattn_components.cluster import CLUSTER_ENV_FILE, gpu_node_pool, s3_settings
from skinattn_components.envfile import setting
from skinattn_components.image import component_image, gpu_image


def trainer_version() -> str:
    """The Kubeflow Trainer release that infra/k8s/trainer installs (``SKINATTN_TRAINER_VERSION``)."""
    return setting(CLUSTER_ENV_FILE, "SKINATTN_TRAINER_VERSION")


def trainer_runtime() -> str:
    """The ClusterTrainingRuntime every TrainJob references (``SKINATTN_TRAINER_RUNTIME``)."""
    return setting(CLUSTER_ENV_FILE, "SKINATTN_TRAINER_RUNTIME")


def trainjob_placement(*, cpu_request: str, cpu_limit: str, memory_request: str, memory_limit: str, shm_size: str) -> str:
    """The trainer nodes' image, runtime, GPU node pool, S3 settings and per-node resources, as the JSON
    that ``skinattn.trainjob.spec.Placement.from_json`` reads."""
    import json

    pool, s3 = gpu_node_pool(), s3_settings()
    return json.dumps(
        {
            "image": gpu_image(),
            "runtime": trainer_runtime(),
            "gpu_resource": pool.resource,
            "node_selector": pool.node_selector(),
            "tolerations": [pool.toleration()],
            "config_map": s3.config_map,
            "config_map_keys": list(s3.config_map_keys),
            "secret": s3.secret,
            "secret_keys": list(s3.secret_keys),
            "cpu_request": cpu_request,
            "cpu_limit": cpu_limit,
            "memory_request": memory_request,
            "memory_limit": memory_limit,
            "shm_size": shm_size,
        },
        sort_keys=True,
    )


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_trainjob(
    prepared: Input[Dataset],
    arch: str,
    soft_attention: bool,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    gpus: int,
    timeout_hours: float,
    nodes: int,
    placement: str,
    pretrained: str,
    model: Output[Model],
    curves: Output[HTML],
):
    """Train on a Kubeflow Trainer TrainJob of ``nodes`` x ``gpus`` (torch-distributed runtime) and copy its
    model folder here; the same outputs as ``train``. The TrainJob's conditions, its pods' phases and warning
    events stream to this log; a failed TrainJob fails the step with its reason."""
    from skinattn.steps import trainjob as steps
    from skinattn.steps.training import curves_step

    summary = steps.trainjob_step(
        prepared.uri, model.uri, model.path, nodes=nodes, gpus=gpus, placement_json=placement,
        timeout_hours=timeout_hours, arch=arch, soft_attention=soft_attention, image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, pretrained=pretrained,
    )  # fmt: skip
    model.metadata.update({"arch": arch, "soft_attention": soft_attention, "best_epoch": summary["best_epoch"],
                           "trainer": "trainjob", "nodes": nodes})  # fmt: skip
    curves_step(model.path, curves.path)
