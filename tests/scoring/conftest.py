"""Fixtures for the scoring tests: a tiny saved model, a synthetic archive, moto's S3 server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _scoring_fixtures import make_archive
from moto.server import ThreadedMotoServer

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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 (here and in subprocesses / DataLoader workers) at the moto server."""
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return env


