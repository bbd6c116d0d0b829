"""A tiny synthetic manifest with train/test splits and small resnet10t models saved to disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.schema import ManifestInfo, write_manifest
from skinattn.data.images import open_image
from skinattn.data.synthetic import make_sample_dataset
from skinattn.models import create_model, preprocess_images, save_model

IMAGE_SIZE = 40  # px of the synthetic JPEGs
INPUT_SIZE = 64  # px the models see: resnet10t then ends on a 2x2 feature map, enough for Grad-CAM


@pytest.fixture(scope="session")
def manifest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six images per class; within each class the even rows are train, the odd ones test."""
    root = tmp_path_factory.mktemp("evaluation-data")
    metadata = pd.read_csv(make_sample_dataset(root / "images", per_class=6, size=IMAGE_SIZE, seed=3), dtype=str)
    frame = pd.DataFrame(
        {
            "image_id": metadata["image_id"],
            "image_path": [str(root / "images" / f"{image_id}.jpg") for image_id in metadata["image_id"]],
            "label": metadata["dx"],
            "lesion_id": metadata["lesion_id"],
        }
    )
    frame["split"] = ["train" if i % 2 == 0 else "test" for i in frame.groupby("label").cumcount()]
    write_manifest(frame, ManifestInfo(classes=list(HAM10000_CLASSES), format="synthetic"), root / "manifest")
    return root / "manifest"


def _train_briefly(model: torch.nn.Module, manifest: Path, steps: int = 12) -> None:
    """A few Adam steps on the train split, so that predictions differ between images and classes."""
    frame = pd.read_csv(manifest / "manifest.csv", dtype=str)
    train = frame[frame["split"] == "train"]
    images = preprocess_images([open_image(p) for p in train["image_path"]], model.config)
    targets = torch.tensor([model.config.class_names.index(label) for label in train["label"]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(images), targets).backward()
        optimiser.step()
    model.eval()


@pytest.fixture(scope="session")
def sa_model_dir(tmp_path_factory: pytest.TempPathFactory, manifest_dir: Path) -> Path:
    torch.manual_seed(0)
    model = create_model("resnet10t", img_size=INPUT_SIZE)
    _train_briefly(model, manifest_dir)
    return save_model(model, tmp_path_factory.mktemp("sa-model"))


@pytest.fixture(scope="session")
def baseline_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    return save_model(create_model("resnet10t", soft_attention=False, img_size=INPUT_SIZE), tmp_path_factory.mktemp("baseline"))
