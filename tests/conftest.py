"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Never let a test reach BentoML's usage tracking (no internet here) or the user's ~/bentoml.
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared real HAM10000 images (``$SKINATTN_REAL_DATA``); skip when they are not available."""
    value = os.environ.get("SKINATTN_REAL_DATA")
    if not value:
        pytest.skip("SKINATTN_REAL_DATA is unset: the real HAM10000 images are not available here")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"SKINATTN_REAL_DATA={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3-compatible server (moto) listening on 127.0.0.1 for the whole session; its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 (here, in subprocesses and DataLoader workers) at the test server through the standard
    AWS variables only, as it would reach MinIO or AWS; return those variables."""
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


@pytest.fixture(autouse=True, scope="session")
def private_model_cache(tmp_path_factory) -> Iterator[Path]:
    """Registry versions fetched by the code under test (scoring, serving) go to a folder of this session,
    never to the user's ~/.cache/skinattn. Subprocesses inherit the variable."""
    folder = tmp_path_factory.mktemp("model-cache")
    previous = os.environ.get("SKINATTN_CACHE_DIR")
    os.environ["SKINATTN_CACHE_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("SKINATTN_CACHE_DIR", None)
        else:
            os.environ["SKINATTN_CACHE_DIR"] = previous


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SKINATTN_* override of infra/image.env or infra/cluster.env from the caller's shell leaks into a test
    of the defaults (the compiled images, the cluster settings)."""
    from skinattn_components.envfile import INFRA_DIR, read_env_file

    for name in ("image.env", "cluster.env"):
        for key in read_env_file(INFRA_DIR / name):
            monkeypatch.delenv(key, raising=False)
    return monkeypatch
