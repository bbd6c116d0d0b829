"""Fixtures for the registry tests: a tiny saved model, and registries on both backends.

The S3 backend is moto's S3 server on 127.0.0.1, reached over HTTP by boto3 through the standard AWS
environment variables, exactly as a real MinIO or AWS endpoint would be.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
import torch
from moto.server import ThreadedMotoServer

from skinattn.models import create_model, save_model
from skinattn.registry import Registry

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else "python"


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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 (in this process and in child processes) at the moto server; return those variables."""
    env = S3_ENV | {"AWS_ENDPOINT_URL": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return env


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


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``skinattn`` subprocess: this process's (incl. monkeypatched AWS vars) plus ``extra``."""
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    env.update(extra)
    return env
