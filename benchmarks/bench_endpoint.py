"""Benchmark: the /classify endpoint with 1 vs 32 concurrent clients, adaptive batching on.

Starts a real server on 127.0.0.1 (``python -m serving serve`` on a freshly registered model with random
weights, in a temporary BENTOML_HOME), warms it up, then for each concurrency level sends a fixed number of
requests from that many client threads, each thread sending its next request as soon as the previous one
is answered (closed loop). Reports throughput (images/s), p50/p99 latency and the mean number of images
per forward pass (from BentoML's adaptive batching histogram in /metrics), and the throughput ratio.

Images: JPEGs from $SKINATTN_REAL_DATA/ham10000-224/images when set, else synthetic 224x224 JPEGs.
Prints one JSON object and a Markdown table. Usage:

    .venv/bin/python benchmarks/bench_endpoint.py [--arch resnet10t] [--requests 128] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet10t", help="backbone of the served model (random weights)")
    parser.add_argument("--img-size", type=int, default=224, help="model input size in pixels")
    parser.add_argument("--requests", type=int, default=128, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32], help="client threads per level")
    parser.add_argument("--max-batch-size", type=int, default=32, help="the service's max_batch_size")
    parser.add_argument("--images", type=int, default=64, help="distinct images cycled through")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_images(count: int) -> tuple[list[bytes], str]:
    real = os.environ.get("SKINATTN_REAL_DATA")
    folder = Path(real) / "ham10000-224" / "images" if real else None
    if folder is not None and folder.is_dir():
        paths = sorted(folder.glob("*.jpg"))[:count]
        if paths:
            return [p.read_bytes() for p in paths], f"{len(paths)} real 224x224 JPEGs from {folder}"
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images, f"{count} synthetic 224x224 JPEGs"


def start_server(root: Path, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    import torch

    from skinattn.models import create_model, save_model
    from skinattn.registry import Registry

    torch.manual_seed(0)
    model = create_model(args.arch, soft_attention=True, img_size=args.img_size)
    registry = Registry(root / "registry")
    version = registry.register(save_model(model, root / "model"), {"accuracy": 0.0})
    registry.promote(version.version, force=True)
    port = free_port()
    env = dict(os.environ, BENTOML_HOME=str(root / "bentoml"), BENTOML_DO_NOT_TRACK="True",
               SKINATTN_MAX_BATCH_SIZE=str(args.max_batch_size), SKINATTN_MAX_LATENCY_MS="60000")
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--root", str(root / "registry"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: {(root / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(process)
    raise SystemExit("server not ready after 180 s")


def stop_server(process: subprocess.Popen) -> None:
    children = psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    for child in children:
        try:
            child.wait(timeout=10)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def run_level(url: str, images: list[bytes], clients: int, requests: int) -> dict:
    """``requests`` requests from ``clients`` closed-loop threads; latencies of successful requests only."""
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                data = images[index % len(images)]
                started = time.perf_counter()
                response = client.post("/classify", files={"image": ("x.jpg", data, "image/jpeg")})
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    images_before = metric(url, "bentoml_service_adaptive_batch_size_sum")
    batches_before = metric(url, "bentoml_service_adaptive_batch_size_count")
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker) for _ in range(clients)]:
            future.result()
    wall = time.perf_counter() - started
    batched_images = metric(url, "bentoml_service_adaptive_batch_size_sum") - images_before
    batches = metric(url, "bentoml_service_adaptive_batch_size_count") - batches_before
    ms = np.asarray(latencies) * 1000
    return {
        "clients": clients,
        "requests": requests,
        "ok": len(latencies),
        "failed": len(failures),
        "failures_sample": failures[:3],
        "wall_s": round(wall, 3),
        "throughput_img_s": round(len(latencies) / wall, 2),
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "latency_p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "mean_images_per_forward_pass": round(batched_images / batches, 2) if batches else None,
    }


def main() -> int:
    args = parse_args()
    images, source = load_images(args.images)
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp:
        process, url = start_server(Path(tmp), args)
        try:
            # Warm-up: BentoML's dispatcher calibrates on its first requests (served one at a time),
            # then a burst lets it learn the cost of larger batches. Not timed.
            run_level(url, images, 1, 16)
            run_level(url, images, max(args.concurrency), 2 * max(args.concurrency))
            levels = [run_level(url, images, clients, args.requests) for clients in args.concurrency]
        finally:
            stop_server(process)
    base, top = levels[0], levels[-1]
    result = {
        "benchmark": "endpoint",
        "arch": args.arch,
        "img_size": args.img_size,
        "max_batch_size": args.max_batch_size,
        "images": source,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "levels": levels,
        "throughput_ratio": round(top["throughput_img_s"] / base["throughput_img_s"], 2) if base["throughput_img_s"] else None,
    }
    print(json.dumps(result, indent=2))
    print()
    print("| clients | images/s | p50 ms | p99 ms | images per forward pass | failed |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for level in levels:
        print(f"| {level['clients']} | {level['throughput_img_s']} | {level['latency_p50_ms']} | {level['latency_p99_ms']} | "
              f"{level['mean_images_per_forward_pass']} | {level['failed']} |")
    print(f"\nthroughput ratio {top['clients']} vs {base['clients']} clients: {result['throughput_ratio']}")
    return 1 if any(level["failed"] for level in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
