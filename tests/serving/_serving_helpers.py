"""Helpers for the serving tests (imported by conftest.py and the tests; not a conftest, so the name is unique).

A real ``skinattn serve`` (hence ``bentoml serve``) subprocess on 127.0.0.1 with a tiny model.

The model (resnet10t with Soft Attention, 64 px input, random weights) is registered in a temporary
registry and promoted; ``skinattn serve`` exports it to a temporary ``BENTOML_HOME`` through the registry's
BentoML bridge and execs ``bentoml serve``. The server is started once per test module.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]
IMG_SIZE = 64
# Small limits so that the oversized cases cost nothing to build.
MAX_UPLOAD_BYTES = 300_000
MAX_PIXELS = 1_000_000
# Warm-up passes keep /readyz at 503 for a moment after the server listens: long enough to observe it.
WARMUP_PASSES = 60
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_registered_model(root: Path) -> tuple[Path, Path]:
    """A tiny SA model saved to ``root/model`` and registered + promoted in ``root/registry``."""
    import torch

    from skinattn.models import create_model, save_model
    from skinattn.registry import Registry

    torch.manual_seed(0)
    model = create_model("resnet10t", num_classes=7, soft_attention=True, img_size=IMG_SIZE)
    model_dir = save_model(model, root / "model")
    registry = Registry(root / "registry")
    version = registry.register(model_dir, {"accuracy": 0.5})
    assert registry.promote(version.version, "accuracy").promoted
    return model_dir, root / "registry"


def serving_env(home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BENTOML_HOME=str(home),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        SKINATTN_MAX_UPLOAD_BYTES=str(MAX_UPLOAD_BYTES),
        SKINATTN_MAX_PIXELS=str(MAX_PIXELS),
        SKINATTN_MAX_LATENCY_MS="60000",
    )
    env.update(extra)
    return env


@dataclasses.dataclass
class Server:
    url: str
    model_dir: Path
    log: Path
    readyz_codes_before_ready: list[int]
    img_size: int = IMG_SIZE
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS

    def client(self, **kwargs) -> httpx.Client:  # noqa: ANN003
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    def metric(self, name: str) -> float:
        """Sum of a Prometheus sample over all its label sets, from /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the server (BentoML stops its workers), then kill whatever of ours is left."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for child in children:
        try:
            child.wait(timeout=10)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.NoSuchProcess:
            pass
