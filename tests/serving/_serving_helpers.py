"""Helpers for the serving tests (imported by conftest.py and the tests; not a conftest, so the name is unique).

A real ``python -m serving serve`` (hence ``bentoml serve``) subprocess on 127.0.0.1 with a tiny model.

The model (resnet10t, with Soft Attention unless asked otherwise, 64 px input, random weights) is
registered in a temporary registry and promoted; ``python -m serving serve`` exports it to a temporary
``BENTOML_HOME`` (``serving/export.py``) and execs ``bentoml serve``. The server is started
once per test module (:func:`running_server`), and the HTTP helpers below are shared by the test modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from PIL import Image

from skinattn.constants import HAM10000_CLASSES

REPO = Path(__file__).resolve().parents[2]
IMG_SIZE = 64
# The served model's card stores this temperature, so that every HTTP test comparing the endpoint's
# probabilities with the library Predictor's also checks that the endpoint applies it (issue 14, item 3).
SERVED_TEMPERATURE = 2.5
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


def make_registered_model(root: Path, soft_attention: bool = True) -> tuple[Path, Path]:
    """A tiny model (SA, or the baseline of the same backbone), calibrated at :data:`SERVED_TEMPERATURE`,
    saved to ``root/model`` and registered + promoted in ``root/registry``."""
    import torch

    from skinattn.models import create_model, save_model
    from skinattn.registry import Registry

    torch.manual_seed(0)
    model = create_model("resnet10t", num_classes=7, soft_attention=soft_attention, img_size=IMG_SIZE)
    model.calibration = {"temperature": SERVED_TEMPERATURE, "fitted_on": "validation", "n": 10}
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

    def client(self, token: str | None = None, **kwargs) -> httpx.Client:  # noqa: ANN003
        """An HTTP client of this server; with ``token``, it sends ``Authorization: Bearer <token>``."""
        kwargs.setdefault("timeout", 60)
        if token is not None:
            kwargs["headers"] = {**kwargs.get("headers", {}), "Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, **kwargs)

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


@contextlib.contextmanager
def running_server(root: Path, soft_attention: bool = True, warmup_passes: int = WARMUP_PASSES,
                   **env: str) -> Iterator[Server]:  # fmt: skip
    """``python -m serving serve`` of a freshly registered tiny model, ready (``/readyz`` 200) on a free port;
    stopped on exit. Fails the test, with the server's log, when it exits or is not ready in time."""
    model_dir, registry = make_registered_model(root, soft_attention=soft_attention)
    port = free_port()
    log = root / "server.log"
    env = serving_env(root / "bentoml", SKINATTN_WARMUP_PASSES=str(warmup_passes), **env)
    command = [sys.executable, "-m", "serving", "serve", "--root", str(registry), "--model", "production",
               "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    codes: list[int] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready after {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            try:
                code = httpx.get(f"{url}/readyz", timeout=5).status_code
            except httpx.TransportError:
                code = None  # not listening yet
            if code == 200:
                break
            if code is not None:
                codes.append(code)
            time.sleep(0.05)
        yield Server(url, model_dir, log, codes)
    finally:
        stop(process)


# ------------------------------------------------------------------------------------------ HTTP helpers


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def noise_image(seed: int, size: tuple[int, int] = (80, 60)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def post_image(client: httpx.Client, data: bytes, filename: str = "lesion.jpg", mime: str = "image/jpeg", **fields: str) -> httpx.Response:
    return client.post("/classify", files={"image": (filename, data, mime)}, data=fields or None)


def json_error(response: httpx.Response) -> str:
    """The error message of a refused request; fails unless the body is exactly ``{"error": "<text>"}``
    (the service's one error format: no BentoML ``detail`` list, no stack trace)."""
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str), json.dumps(body)
    assert "Traceback" not in response.text
    return body["error"]


def expected_probabilities(server: Server, data: bytes) -> list[float]:
    """What the library's Predictor says for the same bytes: the served answer must agree."""
    from skinattn.inference import Predictor

    image = Image.open(io.BytesIO(data)).convert("RGB")
    prediction = Predictor(server.model_dir).predict([image])[0]
    return [prediction.probabilities[name] for name in HAM10000_CLASSES]


def check_classification(body: dict) -> list[float]:
    """Checks a /classify answer's structure; returns its probabilities in class order."""
    assert list(body["probabilities"]) == list(HAM10000_CLASSES)
    probs = list(body["probabilities"].values())
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert body["top_class"] == HAM10000_CLASSES[int(np.argmax(probs))]
    assert body["model"] == "skinattn" and body["version"] == "v1"
    return probs


def asgi_call(middleware, scope: dict) -> tuple[list[dict], bool]:  # noqa: ANN001
    """Run one HTTP request through an ASGI middleware of the service (its ``app`` replaced by a stub);
    (the messages it sent, whether the wrapped app was reached)."""
    reached, sent = [], []

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        reached.append(scope["path"])

    async def receive():  # noqa: ANN202
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):  # noqa: ANN001, ANN202
        sent.append(message)

    middleware.app = app
    asyncio.run(middleware(scope, receive, send))
    return sent, bool(reached)
