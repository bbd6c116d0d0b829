"""A prepared synthetic data set (train/val/test splits, balanced index, 48 px cache) shared by the
training tests, and a helper to build small, fast training configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.prepare import prepare
from skinattn.data.schema import ManifestInfo, write_manifest
from skinattn.data.synthetic import make_sample_dataset
from skinattn.training.config import TrainConfig

IMAGE_SIZE = 48


def ham_manifest(folder: Path, out: Path) -> Path:
    """A manifest of a synthetic HAM10000-layout folder, written directly (ingest is tested elsewhere)."""
    meta = pd.read_csv(folder / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    frame = pd.DataFrame(
        {
            "image_id": meta["image_id"],
            "image_path": [str(folder / f"{i}.jpg") for i in meta["image_id"]],
            "label": meta["dx"],
            "lesion_id": meta["lesion_id"],
        }
    )
    write_manifest(frame, ManifestInfo(classes=list(HAM10000_CLASSES), format="ham10000", source=str(folder)), out)
    return out


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 images per class at 48 px, split by lesion, balanced, cached at 48 px."""
    root = tmp_path_factory.mktemp("training-data")
    make_sample_dataset(root / "images", per_class=30, size=IMAGE_SIZE, seed=0)
    manifest = ham_manifest(root / "images", root / "manifest")
    prepare(manifest, root / "prepared", cache_size=IMAGE_SIZE, progress=False)
    return root / "prepared"


def _small_config(prepared: Path, out: Path, **sections: dict[str, Any]) -> TrainConfig:
    data: dict[str, Any] = {
        "out_dir": str(out),
        "data": {"prepared": str(prepared), "num_workers": 0},
        "model": {"arch": "resnet10t", "img_size": IMAGE_SIZE},
        "train": {"epochs": 3, "device": "cpu", "progress": False},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return TrainConfig.from_dict(data)


@pytest.fixture
def small_config(prepared: Path) -> Any:
    """``small_config(out, **sections)``: resnet10t at 48 px on CPU, no progress bars, 3 epochs, no
    DataLoader workers; each keyword updates the named config section."""
    return lambda out, **sections: _small_config(prepared, out, **sections)
