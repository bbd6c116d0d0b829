"""The module-scoped real server fixture; helpers live in _serving_helpers.py."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from _serving_helpers import REPO, WARMUP_PASSES, START_TIMEOUT_S, Server, free_port, make_registered_model, serving_env, stop


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serving")
    model_dir, registry = make_registered_model(root)
    port = free_port()
    log = root / "server.log"
    env = serving_env(root / "bentoml", SKINATTN_WARMUP_PASSES=str(WARMUP_PASSES))
    command = [sys.executable, "-m", "skinattn", "serve", "--root", str(registry), "--model", "production",
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

