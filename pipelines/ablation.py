"""The ablation pipeline (paper Table 1): every architecture with and without Soft Attention.

::

    ingest ─▶ prepare ─▶ ParallelFor(configs) { train (GPU pool) ─▶ evaluate } ─▶ Collected ─▶ ablation-table

``configs`` is a list of ``{"arch": ..., "soft_attention": ...}`` objects (the default is the paper's five
backbones × {SA, no SA}); every configuration trains on the same prepared split with the same settings and
is evaluated on the same test split, and one step writes Table 1 as Markdown and CSV.
"""

from kfp import dsl

from components.data import ingest, prepare
from components.evaluation import ablation_table, evaluate
from components.training import train
from pipelines._tasks import on_gpu_pool, retry_transient, with_s3, with_step_resources, with_train_resources

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
    bootstrap: int = 1000,
):
    # Caching and retries as in pipelines/training.py (see docs/pipelines.md).
    ingest_task = ingest(data_uri=data_uri, data_format=data_format).set_caching_options(False)
    retry_transient(with_s3(with_step_resources(ingest_task)), retries=3, first_wait="30s")
    prepare_task = prepare(manifest=ingest_task.outputs["manifest"], seed=seed, image_size=image_size)
    with_s3(with_step_resources(prepare_task.set_caching_options(True)))

    with dsl.ParallelFor(configs, parallelism=PARALLELISM, name="architectures") as config:
        train_task = train(
            prepared=prepare_task.outputs["prepared"], arch=config.arch, soft_attention=config.soft_attention,
            image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, gpus=gpus,
        ).set_caching_options(True)  # fmt: skip
        retry_transient(with_s3(with_train_resources(on_gpu_pool(train_task, gpus))), retries=2, first_wait="120s")
        evaluate_task = evaluate(
            model=train_task.outputs["model"], prepared=prepare_task.outputs["prepared"], bootstrap=bootstrap
        ).set_caching_options(True)
        with_s3(with_step_resources(evaluate_task))

    # Cheap and derived from its inputs only; cached.
    table_task = ablation_table(evaluations=dsl.Collected(evaluate_task.outputs["evaluation"]))
    with_step_resources(table_task.set_caching_options(True))
