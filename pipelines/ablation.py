"""The ablation pipeline (paper Table 1): every architecture with and without Soft Attention.

::

    validate-ablation-run ─▶ ingest ─▶ prepare ─▶ ParallelFor(configs) { train (GPU pool) ─▶ evaluate }
                                                   ─▶ Collected ─▶ ablation-table

``configs`` is a list of ``{"arch": ..., "soft_attention": ...}`` objects (the default is the paper's five
backbones × {SA, no SA}); every configuration trains on the same prepared split with the same settings and
is evaluated on the same test split, and one step writes Table 1 as Markdown and CSV.
"""

from kfp import dsl

from skinattn_components.evaluation import ablation_table
from skinattn_components.validation import validate_ablation_run
from skinattn_pipelines._tasks import (
    ingest_and_prepare, train_and_evaluate, validation_first, validation_settings, with_step_resources, with_timeout,
)  # fmt: skip

PIPELINE_NAME = "skinattn-ablation"
PAPER_ARCHS = ("inception_resnet_v2", "densenet201", "vgg16", "resnet50", "resnet34")
PAPER_CONFIGS = [{"arch": arch, "soft_attention": sa} for arch in PAPER_ARCHS for sa in (False, True)]
# At most this many configurations train at once: the GPU pool is shared with the training pipeline.
PARALLELISM = 4


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Paper Table 1: train and evaluate each architecture with and without Soft Attention on one "
    "split, and assemble per-class precision and AUC side by side.",
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
    gpus: int = 1,
    trainer: str = "pod",
    nodes: int = 1,
    bootstrap: int = 1000,
    train_timeout_hours: float = 0.0,
):
    """Train and evaluate every configuration on one split; assemble the paper's Table 1.

    Args:
        data_uri: The collection to train on: a folder or .zip the pods can read, or s3://bucket/prefix
            (must exist and not be empty; checked by the first step).
        data_format: Layout of the collection: ham10000, isic2017, isic2018 or isic-archive (docs/data.md).
        configs: The networks to compare, a non-empty list of {arch: NAME, soft_attention: true|false}
            without repeats; arch as in the training pipeline (`skinattn models list`). Default: the paper's
            five backbones, each with and without Soft Attention (10 trainings, at most 4 at once).
        image_size: Input size in pixels for every configuration, 32 to 1024 (also the resize cache size).
        epochs: Maximum epochs of each training, at least 1 (early stopping on the validation split).
        batch_size: Images per optimisation step, at least 1.
        lr: Adam learning rate, above 0 (the paper's is 0.01).
        seed: Seed of the split, the balancing and every training, 0 to 4294967294.
        gpus: nvidia.com/gpu limit of each train pod, 0 or more; 2 or more train with DDP. With
            trainer=trainjob: GPUs per node.
        trainer: Where each training runs: pod (default: one pod on the GPU node pool) or trainjob (a
            Kubeflow Trainer TrainJob of `nodes` x `gpus` per configuration; see docs/pipelines.md).
        nodes: Number of training nodes of each TrainJob when trainer=trainjob, at least 1.
        bootstrap: Bootstrap resamples for each evaluation's confidence intervals, 0 or more (0 = none).
        train_timeout_hours: Time limit of each training, in hours; the step kills the training and fails
            when it passes. 0 (default) = 1 h + 15 min per epoch. Must end at least 1 h before the train
            pod's deadline (SKINATTN_TIMEOUT_TRAIN, 7 days unless changed at compile time).
    """
    validate_task = validation_first(validate_ablation_run(
        data_uri=data_uri, data_format=data_format, configs=configs, image_size=image_size, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, gpus=gpus, trainer=trainer, nodes=nodes, bootstrap=bootstrap,
        train_timeout_hours=train_timeout_hours, **validation_settings(trains=True),
    ))  # fmt: skip
    prepare_task = ingest_and_prepare(validated=validate_task, data_uri=data_uri, data_format=data_format,
                                      seed=seed, image_size=image_size)  # fmt: skip
    with dsl.ParallelFor(configs, parallelism=PARALLELISM, name="architectures") as config:
        _, evaluate_task = train_and_evaluate(
            prepared=prepare_task.outputs["prepared"], arch=config.arch, soft_attention=config.soft_attention,
            image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, gpus=gpus,
            train_timeout_hours=train_timeout_hours, bootstrap=bootstrap, trainer=trainer, nodes=nodes,
        )  # fmt: skip

    # Cheap and derived from its inputs only; cached.
    table_task = ablation_table(evaluations=dsl.Collected(evaluate_task.outputs["evaluation"]))
    with_timeout(with_step_resources(table_task.set_caching_options(True)), "step")
