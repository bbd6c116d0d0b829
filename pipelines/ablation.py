"""The ablation pipeline (paper Table 1): every architecture with and without Soft Attention, repeated.

::

    validate-ablation-run ─▶ ingest ─▶ prepare ─┐
                         └─▶ ablation-cells ────┴─▶ ParallelFor(cells) { train (GPU pool) ─▶ evaluate }
                                                      ─▶ Collected ─▶ ablation-table

``configs`` is a list of ``{"arch": ..., "soft_attention": ...}`` objects (the default is the paper's five
backbones × {SA, no SA}); ``ablation-cells`` repeats each of them with ``seeds`` training seeds (derived from
``seed`` and the replicate, the same for both arms of an architecture). Every cell trains on the same
prepared split (split seed ``seed``, protocol ``split_protocol``) and is evaluated on the same test images,
so SA and baseline are compared pair-wise by image and seed: the table step writes the verdict, the paired
SA − baseline table with bootstrap CIs, McNemar and DeLong tests, a figure and an HTML report, and Table 1.

The cells are one flat list from a component rather than a ParallelFor nested in a ParallelFor, because
dsl.Collected of a nested loop is not something kfp.local 2.17 and the KFP backend agree on; a flat loop
with one Collected is what both run.
"""

from kfp import dsl

from skinattn_components.evaluation import ablation_cells, ablation_table
from skinattn_components.validation import validate_ablation_run
from skinattn_pipelines._tasks import (
    ingest_and_prepare, train_and_evaluate, validation_first, validation_settings, with_step_resources, with_timeout,
)  # fmt: skip

PIPELINE_NAME = "skinattn-ablation"
PAPER_ARCHS = ("inception_resnet_v2", "densenet201", "vgg16", "resnet50", "resnet34")
PAPER_CONFIGS = [{"arch": arch, "soft_attention": sa} for arch in PAPER_ARCHS for sa in (False, True)]
# At most this many cells train at once: the GPU pool is shared with the training pipeline.
PARALLELISM = 4


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Paper Table 1, repeated: train and evaluate each architecture with and without Soft Attention "
    "with several seeds on one split; paired SA - baseline differences with CIs and a verdict, and per-class "
    "precision and AUC side by side.",
)
def ablation_pipeline(
    data_uri: str = "s3://skinattn/data/ham10000",
    data_format: str = "ham10000",
    configs: list = PAPER_CONFIGS,
    image_size: int = 224,
    epochs: int = 150,
    batch_size: int = 16,
    lr: float = 0.01,
    seed: int = 0,
    seeds: int = 3,
    split_protocol: str = "grouped",
    gpus: int = 1,
    trainer: str = "pod",
    nodes: int = 1,
    bootstrap: int = 1000,
    train_timeout_hours: float = 0.0,
    external_test_uri: str = "",
    external_test_format: str = "isic-archive",
):
    """Train and evaluate every configuration with several seeds on one split; compare SA with its baseline
    pair-wise and assemble the paper's Table 1.

    Args:
        data_uri: The collection to train on: a folder or .zip the pods can read, or s3://bucket/prefix
            (must exist and not be empty; checked by the first step).
        data_format: Layout of the collection: ham10000, isic2017, isic2018 or isic-archive (docs/data.md).
        configs: The networks to compare, a non-empty list of {arch: NAME, soft_attention: true|false}
            without repeats; arch as in the training pipeline (`skinattn models list`). Default: the paper's
            five backbones, each with and without Soft Attention (10 configurations × seeds trainings, at
            most 4 at once).
        image_size: Input size in pixels for every configuration, 32 to 1024 (also the resize cache size).
        epochs: Maximum epochs of each training, at least 1 (early stopping on the validation split).
        batch_size: Images per optimisation step, at least 1.
        lr: Adam learning rate, above 0 (the paper's is 0.01).
        seed: Seed of the split and the balancing (one split for every training), and the training seed of
            the first replicate; later replicates derive theirs from it. 0 to 4294967294.
        seeds: Trainings per configuration with different training seeds (initialisation, augmentation,
            order), 1 to 20; both arms of an architecture share each replicate's seed. With 1 the seed noise
            cannot be judged and the verdict says so.
        split_protocol: How prepare splits the data: grouped (default: stratified, grouped by lesion) or
            paper (the authors' test draw from single-image lesions; see docs/data.md). The reports name it.
        gpus: nvidia.com/gpu limit of each train pod, 0 or more; 2 or more train with DDP. With
            trainer=trainjob: GPUs per node.
        trainer: Where each training runs: pod (default: one pod on the GPU node pool) or trainjob (a
            Kubeflow Trainer TrainJob of `nodes` x `gpus` per configuration; see docs/pipelines.md).
        nodes: Number of training nodes of each TrainJob when trainer=trainjob, at least 1.
        bootstrap: Bootstrap resamples for each evaluation's confidence intervals and for the paired SA -
            baseline CIs of the verdict, 0 or more (0 = none, and then no verdict beyond noise).
        train_timeout_hours: Time limit of each training, in hours; the step kills the training and fails
            when it passes. 0 (default) = 1 h + 15 min per epoch. Must end at least 1 h before the train
            pod's deadline (SKINATTN_TIMEOUT_TRAIN, 7 days unless changed at compile time).
        external_test_uri: An external test set, collected apart from data_uri: a folder or .zip the pods
            can read, or s3://bucket/prefix; "" (default) = none. Every evaluation also evaluates on it and
            its report shows internal and external metrics side by side.
        external_test_format: Layout of external_test_uri: isic-archive (default), ham10000, isic2017 or
            isic2018 (docs/data.md).
    """
    validate_task = validation_first(validate_ablation_run(
        data_uri=data_uri, data_format=data_format, configs=configs, image_size=image_size, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, seeds=seeds, split_protocol=split_protocol, gpus=gpus,
        trainer=trainer, nodes=nodes, bootstrap=bootstrap, train_timeout_hours=train_timeout_hours,
        external_test_uri=external_test_uri, external_test_format=external_test_format,
        **validation_settings(trains=True),
    ))  # fmt: skip
    prepare_task = ingest_and_prepare(validated=validate_task, data_uri=data_uri, data_format=data_format,
                                      seed=seed, image_size=image_size, split_protocol=split_protocol)  # fmt: skip
    # Seconds of list building, a function of its inputs: cached.
    cells_task = ablation_cells(configs=configs, seeds=seeds, seed=seed).after(validate_task)
    with_timeout(with_step_resources(cells_task.set_caching_options(True)), "check")
    with dsl.ParallelFor(cells_task.output, parallelism=PARALLELISM, name="architectures-x-seeds") as cell:
        _, evaluate_task = train_and_evaluate(
            prepared=prepare_task.outputs["prepared"], arch=cell.arch, soft_attention=cell.soft_attention,
            image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=cell.seed, gpus=gpus,
            train_timeout_hours=train_timeout_hours, bootstrap=bootstrap, trainer=trainer, nodes=nodes,
            external_test_uri=external_test_uri, external_test_format=external_test_format,
        )  # fmt: skip

    # Cheap and derived from its inputs only; cached.
    table_task = ablation_table(evaluations=dsl.Collected(evaluate_task.outputs["evaluation"]), bootstrap=bootstrap)
    with_timeout(with_step_resources(table_task.set_caching_options(True)), "step")
