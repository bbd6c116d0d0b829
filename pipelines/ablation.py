"""The ablation pipeline (paper Table 1): every architecture with and without Soft Attention.

::

    ingest ─▶ prepare ─▶ ParallelFor(configs) { train (GPU pool) ─▶ evaluate } ─▶ Collected ─▶ ablation-table

``configs`` is a list of ``{"arch": ..., "soft_attention": ...}`` objects (the default is the paper's five
backbones × {SA, no SA}); every configuration trains on the same prepared split with the same settings and
is evaluated on the same test split, and one step writes Table 1 as Markdown and CSV.
"""

from kfp import dsl

from skinattn_components.evaluation import ablation_table
from skinattn_pipelines._tasks import ingest_and_prepare, train_and_evaluate, with_step_resources

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
    prepare_task = ingest_and_prepare(data_uri=data_uri, data_format=data_format, seed=seed, image_size=image_size)
    with dsl.ParallelFor(configs, parallelism=PARALLELISM, name="architectures") as config:
        _, evaluate_task = train_and_evaluate(
            prepared=prepare_task.outputs["prepared"], arch=config.arch, soft_attention=config.soft_attention,
            image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, gpus=gpus,
            bootstrap=bootstrap,
        )  # fmt: skip

    # Cheap and derived from its inputs only; cached.
    table_task = ablation_table(evaluations=dsl.Collected(evaluate_task.outputs["evaluation"]))
    with_step_resources(table_task.set_caching_options(True))
