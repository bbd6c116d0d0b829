"""The train component: runs in the GPU image (see components/data.py for the pattern)."""

# No `from __future__ import annotations`: KFP reads the parameter types from the live annotations.
from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Model, Output

from skinattn_components.image import gpu_image


@dsl.component(base_image=gpu_image(), install_kfp_package=False)
def train(
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
    pretrained: str,
    model: Output[Model],
    curves: Output[HTML],
):
    """Train with early stopping on the val split; ``model`` is the best epoch's model folder
    (model.safetensors + model.json) plus config.yaml, history.jsonl and summary.json; ``curves`` (shown
    inline in the UI) draws the per-epoch training loss and validation metrics. The training processes are
    killed, failing the step, after ``timeout_hours`` (0: derived from ``epochs``). ``pretrained``: starting
    weights of the backbone, a path or ``s3://`` URI of a timm weights file ("" = random init)."""
    from skinattn.steps import training as steps

    summary = steps.train_step(
        prepared.path, model.path, gpus=gpus, timeout_hours=timeout_hours, arch=arch, soft_attention=soft_attention,
        image_size=image_size, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, pretrained=pretrained,
    )  # fmt: skip
    model.metadata.update({"arch": arch, "soft_attention": soft_attention, "best_epoch": summary["best_epoch"]})
    steps.curves_step(model.path, curves.path)
