"""The validation components: the first task of each pipeline (see components/data.py for the pattern).

One per pipeline, each taking that pipeline's parameters with their types, because a component input cannot
be "all the pipeline's parameters"; the bodies differ only in the dict they hand to the one step,
``skinattn.steps.validation.validate_run_step`` (the rules are ``skinattn.run_parameters``, which the CLI
applies too). ``gpu_resource``, ``gpu_node_selector`` and ``train_deadline_hours`` are not pipeline
parameters: the pipelines pass the compile-time values of ``infra/cluster.env``.
"""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl

from skinattn_components.image import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_training_run(
    data_uri: str,
    data_format: str,
    arch: str,
    soft_attention: bool,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    gpus: int,
    trainer: str,
    nodes: int,
    promotion_metric: str,
    promotion_source: str,
    registry_root: str,
    bootstrap: int,
    train_timeout_hours: float,
    external_test_uri: str,
    external_test_format: str,
    pretrained: str,
    gpu_resource: str,
    gpu_node_selector: str,
    train_deadline_hours: float,
):
    """Refuse a training run whose parameters, data, buckets or GPU request cannot work, naming every problem."""
    from skinattn.steps import validation as steps

    params = {
        "data_uri": data_uri, "data_format": data_format, "arch": arch, "soft_attention": soft_attention,
        "image_size": image_size, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "gpus": gpus,
        "trainer": trainer, "nodes": nodes, "promotion_metric": promotion_metric, "promotion_source": promotion_source,
        "registry_root": registry_root, "bootstrap": bootstrap, "train_timeout_hours": train_timeout_hours,
        "external_test_uri": external_test_uri, "external_test_format": external_test_format,
        "pretrained": pretrained,
    }  # fmt: skip
    steps.validate_run_step("training", params, gpu_parameter="gpus", gpu_resource=gpu_resource,
                            gpu_node_selector=gpu_node_selector, train_deadline_hours=train_deadline_hours)  # fmt: skip


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_ablation_run(
    data_uri: str,
    data_format: str,
    configs: list,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    seeds: int,
    split_protocol: str,
    gpus: int,
    trainer: str,
    nodes: int,
    bootstrap: int,
    train_timeout_hours: float,
    external_test_uri: str,
    external_test_format: str,
    gpu_resource: str,
    gpu_node_selector: str,
    train_deadline_hours: float,
):
    """Refuse an ablation run whose parameters, data, buckets or GPU request cannot work, naming every problem."""
    from skinattn.steps import validation as steps

    params = {
        "data_uri": data_uri, "data_format": data_format, "configs": configs, "image_size": image_size,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "seeds": seeds,
        "split_protocol": split_protocol, "gpus": gpus, "trainer": trainer, "nodes": nodes, "bootstrap": bootstrap,
        "train_timeout_hours": train_timeout_hours, "external_test_uri": external_test_uri,
        "external_test_format": external_test_format,
    }  # fmt: skip
    steps.validate_run_step("ablation", params, gpu_parameter="gpus", gpu_resource=gpu_resource,
                            gpu_node_selector=gpu_node_selector, train_deadline_hours=train_deadline_hours)  # fmt: skip


@dsl.component(base_image=component_image(), install_kfp_package=False)
def validate_batch_scoring_run(
    source_uri: str,
    model: str,
    registry_root: str,
    num_shards: int,
    batch_size: int,
    workers: int,
    gpus_per_shard: int,
    output_format: str,
    output_uri: str,
    bootstrap: int,
    gpu_resource: str,
    gpu_node_selector: str,
):
    """Refuse a batch-scoring run whose parameters, archive, buckets or GPU request cannot work, naming every
    problem."""
    from skinattn.steps import validation as steps

    params = {
        "source_uri": source_uri, "model": model, "registry_root": registry_root, "num_shards": num_shards,
        "batch_size": batch_size, "workers": workers, "gpus_per_shard": gpus_per_shard,
        "output_format": output_format, "output_uri": output_uri, "bootstrap": bootstrap,
    }  # fmt: skip
    steps.validate_run_step("batch_scoring", params, gpu_parameter="gpus_per_shard", gpu_resource=gpu_resource,
                            gpu_node_selector=gpu_node_selector)  # fmt: skip
