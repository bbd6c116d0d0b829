"""Fixtures for the scoring tests: a tiny saved model, a synthetic archive (S3: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _scoring_fixtures import make_archive

from skinattn.models import create_model, save_model


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet10t + Soft Attention at 32 px, random weights, saved with save_model."""
    torch.manual_seed(0)
    return save_model(create_model("resnet10t", img_size=32), tmp_path_factory.mktemp("model"))


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A labelled isic-download folder of 12 images."""
    folder = tmp_path / "download"
    return folder, make_archive(folder, 12)
