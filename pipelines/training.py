"""The training pipeline: validate → ingest → prepare → train → evaluate → compare with production → register.

::

    validate-training-run ─▶ ingest ─▶ prepare ─┬─▶ train (GPU pool) ─▶ evaluate ─▶ compare-with-production
                                                │                          ▲              │ "promote"
                                                └──────────────────────────┴──────────────▼
                                                                         dsl.If ─▶ register (+ promote)

The parameters are the run form of the KFP UI. ``gpus`` is the train step's ``nvidia.com/gpu`` limit (a
pipeline parameter, which kfp 2.17 accepts for ``set_accelerator_limit``); the train step always runs on the
GPU node pool, 2 or more GPUs train with DDP. Caching, retries and time limits are chosen per task (below,
and in the stages of pipelines/_tasks.py that the ablation pipeline shares); docs/pipelines.md gives the
reasons. With ``external_test_uri`` set, evaluate also evaluates on that external test set (one more read
inside the step, no extra task) and ``promotion_source=external`` makes the gate compare on it. The
parameters' descriptions (the ``Args:`` below) are compiled into the IR and shown in the form.
"""

from kfp import dsl

from skinattn_components.evaluation import compare_with_production
from skinattn_components.registry import register
from skinattn_components.validation import validate_training_run
from skinattn_pipelines._tasks import (
    ingest_and_prepare, train_and_evaluate, validation_first, validation_settings, with_s3, with_step_resources,
    with_timeout,
)  # fmt: skip

PIPELINE_NAME = "skinattn-training"
# Bootstrap resamples for the confidence intervals in the report (about 12 s per 1000 on 2 cores).
BOOTSTRAP_RESAMPLES = 1000


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train a Soft-Attention classifier on a dermoscopy collection, evaluate it on the held-out test "
    "split, and register + promote it only if it beats the production model on the same test split.",
)
def training_pipeline(
    data_uri: str = "s3://skinattn/data/ham10000",
    data_format: str = "ham10000",
    arch: str = "inception_resnet_v2",
    soft_attention: bool = True,
    image_size: int = 299,
    epochs: int = 150,
    batch_size: int = 16,
    lr: float = 0.01,
    seed: int = 0,
    gpus: int = 1,
    trainer: str = "pod",
    nodes: int = 1,
    promotion_metric: str = "balanced_accuracy",
    promotion_source: str = "internal",
    registry_root: str = "s3://skinattn/registry",
    bootstrap: int = BOOTSTRAP_RESAMPLES,
    train_timeout_hours: float = 0.0,
    external_test_uri: str = "",
    external_test_format: str = "isic-archive",
    pretrained: str = "",
):
    """Train, evaluate, and register + promote only a model that beats production.

    Args:
        data_uri: The collection to train on: a folder or .zip the pods can read, or s3://bucket/prefix
            (must exist and not be empty; checked by the first step).
        data_format: Layout of the collection: ham10000, isic2017, isic2018 or isic-archive (docs/data.md).
        arch: Backbone architecture: inception_resnet_v2, densenet201, resnet50, resnet34, vgg16 (the
            paper's), or resnet18, resnet10t (small, for tests); `skinattn models list`.
        soft_attention: true inserts the Soft Attention block where the paper does; false trains the
            paper's baseline without it.
        image_size: Input size in pixels, 32 to 1024 (square; also the size of prepare's resize cache).
            The paper uses 299 for inception_resnet_v2 and 224 for the others.
        epochs: Maximum number of epochs, at least 1; early stopping on the validation split usually ends
            sooner. Also scales the automatic train time limit (see train_timeout_hours).
        batch_size: Images per optimisation step, at least 1 (per GPU process with DDP).
        lr: Adam learning rate, above 0 (the paper's is 0.01, with epsilon 0.1).
        seed: Seed of the split, the balancing and the training, 0 to 4294967294. Same data + same seed =
            same model.
        gpus: nvidia.com/gpu limit of the train pod, 0 or more; 2 or more train with DDP (torchrun). The
            train pod always runs on the GPU node pool; 0 trains on its CPU. With trainer=trainjob: GPUs
            per node.
        trainer: Where training runs: pod (default: one pod on the GPU node pool) or trainjob (a Kubeflow
            Trainer TrainJob of `nodes` x `gpus`, torch-distributed runtime, started and followed by a light
            launcher step; needs Kubeflow Trainer v2.2 and the pipeline root on S3, see docs/pipelines.md).
        nodes: Number of training nodes (pods) when trainer=trainjob, at least 1; ignored by trainer=pod.
        promotion_metric: Metric the production gate compares, a flattened name of the evaluation's
            metrics.json: balanced_accuracy (default), accuracy, weighted_avg.auc, macro_avg.precision, ...;
            whether higher or lower is better is read from the name.
        promotion_source: Test set the gate compares promotion_metric on: internal (default: the held-out
            test split of data_uri) or external (the external test set; needs external_test_uri). Production
            is re-evaluated on the same set either way.
        registry_root: Model registry: a folder the pods can read and write, or s3://bucket/prefix
            (docs/registry.md).
        bootstrap: Bootstrap resamples for the confidence intervals of the evaluation report, 0 or more
            (0 = none; about 12 s per 1000 on 2 cores).
        train_timeout_hours: Time limit of the training itself, in hours; the step kills the training
            processes and fails when it passes. 0 (default) = 1 h + 15 min per epoch. Must end at least 1 h
            before the train pod's deadline (SKINATTN_TIMEOUT_TRAIN, 7 days unless changed at compile time).
        external_test_uri: An external test set, collected apart from data_uri (another clinic, camera or
            year): a folder or .zip the pods can read, or s3://bucket/prefix; "" (default) = none. The
            evaluate step evaluates the model on it too and the report shows internal and external metrics
            side by side; rows whose label the model does not know are counted, not scored.
        external_test_format: Layout of external_test_uri: isic-archive (default), ham10000, isic2017 or
            isic2018 (docs/data.md).
        pretrained: Starting weights of the backbone: a timm weights file for arch, as s3://bucket/key or a
            path the pods can read, .safetensors (preferred) or .pth/.pt/.bin (read with weights_only=True);
            "" (default) = random initialisation. Its sha256 is recorded in the model card; docs/training.md
            says how to put ImageNet weights in the bucket once.
    """
    validate_task = validation_first(validate_training_run(
        data_uri=data_uri, data_format=data_format, arch=arch, soft_attention=soft_attention, image_size=image_size,
        epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, gpus=gpus, trainer=trainer, nodes=nodes,
        promotion_metric=promotion_metric, promotion_source=promotion_source, registry_root=registry_root,
        bootstrap=bootstrap, train_timeout_hours=train_timeout_hours, external_test_uri=external_test_uri,
        external_test_format=external_test_format, pretrained=pretrained, **validation_settings(trains=True),
    ))  # fmt: skip
    prepare_task = ingest_and_prepare(validated=validate_task, data_uri=data_uri, data_format=data_format,
                                      seed=seed, image_size=image_size)  # fmt: skip
    prepared = prepare_task.outputs["prepared"]
    train_task, evaluate_task = train_and_evaluate(
        prepared=prepared, arch=arch, soft_attention=soft_attention, image_size=image_size, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, gpus=gpus, train_timeout_hours=train_timeout_hours,
        bootstrap=bootstrap, trainer=trainer, nodes=nodes, external_test_uri=external_test_uri,
        external_test_format=external_test_format, pretrained=pretrained,
    )  # fmt: skip

    # The gate and the registration read and write the registry, whose state changes between runs: never cached.
    gate = compare_with_production(
        evaluation=evaluate_task.outputs["evaluation"], prepared=prepared,
        registry_root=registry_root, promotion_metric=promotion_metric, promotion_source=promotion_source,
    ).set_caching_options(False)  # fmt: skip
    with_timeout(with_s3(with_step_resources(gate)), "step")

    # register takes prepare's data fingerprint (a string), not the prepared set with its resize cache; its
    # `registered_model` artifact is the run's link to the new registry version (lineage).
    with dsl.If(gate.output == "promote", name="better-than-production"):
        register_task = register(
            model=train_task.outputs["model"], evaluation=evaluate_task.outputs["evaluation"],
            data_fingerprint=prepare_task.outputs["Output"], registry_root=registry_root,
            promotion_metric=promotion_metric, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            promotion_source=promotion_source,
        ).set_caching_options(False)  # fmt: skip
        with_timeout(with_s3(with_step_resources(register_task)), "step")
