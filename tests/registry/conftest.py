"""Fixtures for the registry tests: a tiny saved model, and registries on both backends.

The S3 backend is moto's S3 server on 127.0.0.1, reached over HTTP by boto3 through the standard AWS
environment variables, exactly as a real MinIO or AWS endpoint would be.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import torch

from skinattn.models import create_model, save_model
from skinattn.registry import Registry



@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real model folder (resnet10t + SA at 32 px), saved once for the session."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    save_model(create_model("resnet10t", img_size=32), out, metadata={"params": {"epochs": 1, "lr": 0.01}})
    return out


@pytest.fixture
def write_metrics(tmp_path: Path) -> Callable[..., Path]:
    """Write a metrics JSON file and return its path: ``write_metrics(accuracy=0.8, auc=0.9)``."""
    counter = iter(range(1_000_000))

    def write(**metrics: object) -> Path:
        path = tmp_path / f"metrics-{next(counter)}.json"
        path.write_text(json.dumps(metrics), encoding="utf-8")
        return path

    return write


@pytest.fixture
def s3_bucket(s3_env: dict[str, str]) -> str:
    """A fresh, empty bucket for one test."""
    name = f"registry-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def registry_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The root of an empty registry on each backend: a folder, then ``s3://<fresh bucket>/models``."""
    if request.param == "local":
        return str(tmp_path / "registry")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/models"


@pytest.fixture
def registry(registry_root: str) -> Registry:
    return Registry(registry_root)
