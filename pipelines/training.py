"""The training pipeline: ingest → prepare → train → evaluate → compare with production → register.

::

    ingest ─▶ prepare ─┬─▶ train (GPU pool) ─▶ evaluate ─▶ compare-with-production
                       │                          ▲              │ "promote"
                       └──────────────────────────┴──────────────▼
                                                        dsl.If ─▶ register (+ promote)

The parameters are the run form of the KFP UI. ``gpus`` is the train step's ``nvidia.com/gpu`` limit (a
pipeline parameter, which kfp 2.17 accepts for ``set_accelerator_limit``); the train step always runs on the
GPU node pool, 2 or more GPUs train with DDP. Caching and retries are chosen per task (below, and in the
stages of pipelines/_tasks.py that the ablation pipeline shares); docs/pipelines.md gives the reasons.
"""

from kfp import dsl

from skinattn_components.evaluation import compare_with_production
from skinattn_components.registry import register
from skinattn_pipelines._tasks import ingest_and_prepare, train_and_evaluate, with_s3, with_step_resources

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
    promotion_metric: str = "balanced_accuracy",
    registry_root: str = "s3://skinattn/registry",
    bootstrap: int = BOOTSTRAP_RESAMPLES,
):
    prepare_task = ingest_and_prepare(data_uri=data_uri, data_format=data_format, seed=seed, image_size=image_size)
    prepared = prepare_task.outputs["prepared"]
    train_task, evaluate_task = train_and_evaluate(
        prepared=prepared, arch=arch, soft_attention=soft_attention, image_size=image_size, epochs=epochs,
        batch_size=batch_size, lr=lr, seed=seed, gpus=gpus, bootstrap=bootstrap,
    )  # fmt: skip

    # The gate and the registration read and write the registry, whose state changes between runs: never cached.
    gate = compare_with_production(
        evaluation=evaluate_task.outputs["evaluation"], prepared=prepared,
        registry_root=registry_root, promotion_metric=promotion_metric,
    ).set_caching_options(False)  # fmt: skip
    with_s3(with_step_resources(gate))

    with dsl.If(gate.output == "promote", name="better-than-production"):
        register_task = register(
            model=train_task.outputs["model"], evaluation=evaluate_task.outputs["evaluation"],
            prepared=prepared, registry_root=registry_root,
            promotion_metric=promotion_metric, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        ).set_caching_options(False)  # fmt: skip
        with_s3(with_step_resources(register_task))
