"""Builders for the batch-scoring pipeline tests: a tiny isic-download archive and a registered model.

The archive follows ``isic image download``: ``<isic_id>.jpg`` (real JPEGs that differ, so predictions
differ), ``metadata.csv`` with new-schema diagnosis columns, ``attribution.txt``, ``licenses/``; plus one
corrupt JPEG that scoring must list in the errors file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from _drift_reference import save_with_reference
from _isic_download import jpeg_bytes, make_archive

from skinattn.models import create_model, save_model
from skinattn.registry import Registry

CORRUPT_ID = "ISIC_9999999"


def make_isic_download(folder: Path, count: int) -> dict[str, str]:
    """``count`` labelled images + one corrupt JPEG; returns {isic_id: class} of the good images."""
    labels = make_archive(folder, count)
    (folder / f"{CORRUPT_ID}.jpg").write_bytes(jpeg_bytes(999)[:60])  # a JPEG header and nothing else
    return labels


def make_registry(root: Path, scratch: Path, reference_images: Path | None = None) -> Registry:
    """A registry whose production version v1 is resnet10t + Soft Attention at 32 px (random weights); with
    ``reference_images``, saved with its predictions on them as its drift reference (as training stores its
    validation predictions)."""
    torch.manual_seed(0)
    model = create_model("resnet10t", img_size=32)
    if reference_images is None:
        model_dir = save_model(model, scratch / "model")
    else:
        model_dir = save_with_reference(model, scratch / "model", reference_images)
    registry = Registry(str(root))
    version = registry.register(model_dir, {"balanced_accuracy": 0.5})
    registry.promote(version.version, "balanced_accuracy", force=True)
    return registry
