"""Benchmark: the /classify endpoint against the model's own batched forward pass, in one run.

One run starts a real server on 127.0.0.1 (``python -m serving serve`` on a freshly registered model with
random weights, in a temporary BENTOML_HOME) and then, for ``--rounds`` rounds:

1. **raw forward** (the yardstick): ``ServingModel.classify`` alone on pixels decoded and resized beforehand
   (the same JPEGs, the same Preprocessor), at batch sizes 1, 4, 8, 16, 32, in a fresh process per model
   worker with the torch thread count the model service reports in its log; the server is idle meanwhile.
   The best images/s over the batch sizes is what the endpoint is compared with.
2. **endpoint, 1 client** and **3. endpoint, 32 clients**: closed-loop clients (each sends its next request
   when the previous one is answered) posting real JPEGs to /classify for ``--seconds`` each.

Reported per level: images/s, p50/p99 latency, mean images per forward pass (BentoML's adaptive batching
histogram in /metrics), and the ratio (32-client images/s) / (best raw images/s); medians over the rounds.

Where the rest goes (the profile): during every level the CPU time of each process is sampled (this script's
client threads, the API server, the model service, BentoML's supervisor, and everything else on the machine)
and reported in CPU-ms per image, next to the raw forward's own CPU-ms per image; BentoML's request-duration
histograms split the latency into the API service's part and the model service's (queue + forward).
``--py-spy`` adds one more 32-client level (not in the numbers: the sampler costs CPU) with py-spy attached
to the API and model processes, and splits their samples into decode/resize, HTTP parsing, the call between
the services, forward, logging, event loop and so on (``pip install py-spy``; not a project dependency).

Images: JPEGs from $SKINATTN_REAL_DATA/ham10000-224/images when set, else synthetic 224x224 JPEGs.
Prints one JSON object and Markdown tables. The server runs with the service's defaults; ``--env`` sets its
environment (e.g. ``--env SKINATTN_MAX_BATCH_SIZE=16 --env SKINATTN_TORCH_THREADS=1``). Usage:

    SKINATTN_REAL_DATA=../shared/data .venv/bin/python benchmarks/bench_endpoint.py [--rounds 3] [--py-spy]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL_SERVICE = "skinattn-model"
# The model service's start-up line (serving/service.py, SkinattnModel.load).
LOADED_LINE = re.compile(r"loaded \S+ \(.*\) on (\S+), (\d+) torch threads, max batch (\d+)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet10t", help="backbone of the served model (random weights, with SA)")
    parser.add_argument("--img-size", type=int, default=224, help="model input size in pixels")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of raw forward + endpoint levels (medians reported)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per endpoint level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 32], help="closed-loop clients per endpoint level")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16, 32], help="raw forward batch sizes")
    parser.add_argument("--raw-seconds", type=float, default=3.0, help="timed seconds per raw batch size (after one untimed pass)")
    parser.add_argument("--images", type=int, default=64, help="distinct images cycled through")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server environment (repeatable)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each round, wait up to SECONDS until other processes use under 15%% of the CPUs")
    parser.add_argument("--label", default="", help="name of this configuration in the output")
    parser.add_argument("--py-spy", action="store_true", help="profile one extra 32-client level with py-spy")
    parser.add_argument("--py-spy-keep", type=Path, metavar="DIR", help="copy py-spy's raw stacks to DIR")
    parser.add_argument("--raw-worker", help=argparse.SUPPRESS)  # internal: one raw-forward process (JSON spec)
    return parser.parse_args(argv)


# --- images and the server ------------------------------------------------------------------------------


def load_images(count: int) -> tuple[list[bytes], str]:
    real = os.environ.get("SKINATTN_REAL_DATA")
    folder = Path(real) / "ham10000-224" / "images" if real else None
    if folder is not None and folder.is_dir():
        paths = sorted(folder.glob("*.jpg"))[:count]
        if paths:
            return [p.read_bytes() for p in paths], f"{len(paths)} real 224x224 HAM10000 JPEGs from {folder}"
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images, f"{count} synthetic 224x224 JPEGs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def register_model(root: Path, arch: str, img_size: int) -> Path:
    import torch

    from skinattn.models import create_model, save_model
    from skinattn.registry import Registry

    torch.manual_seed(0)
    model_dir = save_model(create_model(arch, soft_attention=True, img_size=img_size), root / "model")
    registry = Registry(root / "registry")
    version = registry.register(model_dir, {"accuracy": 0.0})
    registry.promote(version.version, force=True)
    return Path(model_dir)


def start_server(root: Path, server_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, BENTOML_HOME=str(root / "bentoml"), BENTOML_DO_NOT_TRACK="True", **server_env)
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--root", str(root / "registry"), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
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
    raise SystemExit("server not ready after 240 s")


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


def server_processes(process: subprocess.Popen) -> dict[str, list[psutil.Process]]:
    """The server's processes by role: BentoML's supervisor (``bentoml serve``, which ``python -m serving
    serve`` execs into), the API service's workers and the model service's workers."""
    supervisor = psutil.Process(process.pid)
    roles: dict[str, list[psutil.Process]] = {"supervisor": [supervisor], "api": [], "model": []}
    for child in supervisor.children(recursive=True):
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if f"--service-name {MODEL_SERVICE}" in command:
            roles["model"].append(child)
        elif "_bentoml_impl.worker" in command:
            roles["api"].append(child)
        else:
            roles["supervisor"].append(child)
    return roles


def model_service_setup(log: Path) -> dict:
    """Device, torch threads and max batch size of the model service, from its start-up line."""
    match = LOADED_LINE.search(log.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no 'loaded ... torch threads' line in the server log {log}")
    return {"device": match.group(1), "torch_threads": int(match.group(2)), "max_batch_size": int(match.group(3))}


def metrics(url: str) -> dict[str, float]:
    """Sums of the Prometheus series this benchmark reads, over all label sets but the endpoint's."""
    wanted = {
        "bentoml_service_adaptive_batch_size_sum": "batched_images",
        "bentoml_service_adaptive_batch_size_count": "batches",
    }
    out = dict.fromkeys([*wanted.values(), "classify_s", "classify_n", "forward_s", "forward_n"], 0.0)
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{", 1)[0]
        if name in wanted:
            out[wanted[name]] += float(value)
        elif name.startswith("bentoml_service_request_duration_seconds_") and 'http_response_code="200"' in series:
            kind = "s" if name.endswith("_sum") else "n" if name.endswith("_count") else None
            if kind and 'endpoint="/classify"' in series:
                out[f"classify_{kind}"] += float(value)
            elif kind and 'endpoint="/forward"' in series:
                out[f"forward_{kind}"] += float(value)
    return out


# --- CPU accounting -----------------------------------------------------------------------------------------


def _cpu_seconds(processes: list[psutil.Process]) -> tuple[float, float]:
    """(CPU-seconds of the processes, of their main threads only). A BentoML worker runs its event loop
    (HTTP, (de)serialization, batching, logging) in its main thread; everything else runs in other threads:
    decoding in the API service's worker threads, the forward pass and torch's own threads in the model's."""
    total = main = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            main += sum(t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid)
        except psutil.Error:
            continue
        total += times.user + times.system
    return total, main


def _machine_busy() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine, steal seconds) since boot."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    steal = getattr(times, "steal", 0.0)
    return sum(times) - idle - steal - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0), steal


class CpuMeter:
    """CPU-seconds used by each group of processes between start() and stop(); what nobody in the groups used
    is ``others`` (other jobs on a shared machine, kernel threads)."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups

    def start(self) -> None:
        self._begin = {name: _cpu_seconds(procs) for name, procs in self.groups.items()}
        self._machine, self._steal = _machine_busy()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        end = {name: _cpu_seconds(procs) for name, procs in self.groups.items()}
        used = {name: end[name][0] - self._begin[name][0] for name in self.groups}
        machine, steal = _machine_busy()
        wall = time.perf_counter() - self._wall
        used["others"] = max(0.0, (machine - self._machine) - sum(used.values()))
        used["idle"] = max(0.0, wall * psutil.cpu_count() - (machine - self._machine) - (steal - self._steal))
        used["steal"] = steal - self._steal
        for name in ("api", "model"):  # the event loop's part of the services' CPU (see _cpu_seconds)
            if name in self.groups:
                used[f"{name}_loop"] = end[name][1] - self._begin[name][1]
        used["wall"] = wall
        return used


def wait_quiet(groups: dict, limit_s: float) -> float:
    """Wait (at most ``limit_s``) until other processes used under 15 % of the CPUs over 3 s; the last share."""
    deadline = time.monotonic() + limit_s
    while True:
        meter = CpuMeter(groups)
        meter.start()
        time.sleep(3.0)
        cpu = meter.stop()
        share = cpu["others"] / (cpu["wall"] * psutil.cpu_count())
        if share < 0.15 or time.monotonic() > deadline:
            return round(share, 3)


def per_image_ms(cpu: dict[str, float], images: int) -> dict[str, float]:
    return {name: round(1000 * value / images, 2) for name, value in cpu.items() if name != "wall"} if images else {}


# --- the raw forward --------------------------------------------------------------------------------------


def raw_worker(spec_json: str) -> int:
    """One raw-forward process: the model folder loaded as the model service loads it, with the same torch
    thread count; for each batch size, one untimed pass, then passes until the slot's time is up. Slots are
    fixed wall-clock windows shared by all workers, so that W workers run each batch size together."""
    spec = json.loads(spec_json)
    import torch

    torch.set_num_threads(spec["threads"])
    from serving.runtime import Preprocessor, ServingModel
    from serving.upload import decode_upload

    model = ServingModel(spec["model_dir"], device=spec["device"])
    prep = Preprocessor(spec["model_dir"])
    size = prep.config.input_size
    images, _ = load_images(spec["images"])
    pixels = np.concatenate([prep.prepare(decode_upload(data, 40_000_000, size)) for data in images])
    while len(pixels) < max(spec["batch_sizes"]):
        pixels = np.concatenate([pixels, pixels])
    print("READY", flush=True)
    start = float(sys.stdin.readline())  # the same wall-clock start for every worker
    results = []
    for index, batch_size in enumerate(spec["batch_sizes"]):
        slot_start = start + index * spec["slot"]
        slot_end = slot_start + spec["slot"]
        time.sleep(max(0.0, slot_start - time.time()))
        batch = pixels[:batch_size]
        model.classify(batch)  # untimed: allocator growth for this shape
        count, passes = 0, []
        cpu0, began = time.process_time(), time.perf_counter()
        while True:
            t0 = time.perf_counter()
            model.classify(batch)
            passes.append(time.perf_counter() - t0)
            count += batch_size
            if time.time() + passes[-1] > slot_end and len(passes) >= 2:
                break
        wall = time.perf_counter() - began
        results.append({"batch_size": batch_size, "images": count, "wall_s": wall,
                        "cpu_s": time.process_time() - cpu0, "pass_ms_median": 1000 * statistics.median(passes)})  # fmt: skip
    print(json.dumps({"threads": torch.get_num_threads(), "results": results}), flush=True)
    sys.stdin.readline()  # stay alive until the parent has read this process's CPU time
    return 0


def run_raw(model_dir: Path, setup: dict, workers: int, args: argparse.Namespace, groups: dict, server_env: dict) -> dict:
    """The raw forward in ``workers`` processes at once (one per model-service worker), with the server's
    environment (thread and OpenMP settings) and the model service's torch thread count."""
    # Wall-clock seconds per batch size: the timed passes plus room for the untimed one (the last timed pass
    # may overrun; the next slot then starts late, in every worker alike).
    slot = args.raw_seconds + 1.5
    spec = {"model_dir": str(model_dir), "device": setup["device"], "threads": setup["torch_threads"],
            "images": args.images, "batch_sizes": args.batch_sizes, "slot": slot}  # fmt: skip
    env = dict(os.environ, **server_env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryFile("w+") as errors:
        procs = [
            subprocess.Popen([sys.executable, __file__, "--raw-worker", json.dumps(spec)], cwd=REPO, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
            for _ in range(workers)
        ]  # fmt: skip
        ready = [p.stdout.readline().strip() == "READY" for p in procs]
        meter = CpuMeter({name: procs_ for name, procs_ in groups.items()} | {"raw": [psutil.Process(p.pid) for p in procs]})
        start = time.time() + 0.2
        meter.start()
        for proc, ok in zip(procs, ready):
            if ok:
                proc.stdin.write(f"{start}\n")
                proc.stdin.flush()
        outputs = [p.stdout.readline() if ok else "" for p, ok in zip(procs, ready)]
        cpu = meter.stop()
        for proc in procs:
            proc.communicate("exit\n")
        if not all(ready) or any(p.returncode != 0 for p in procs):
            errors.seek(0)
            raise SystemExit(f"raw forward worker failed: {errors.read()[-3000:]}")
    parsed = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    table = []
    for index, batch_size in enumerate(args.batch_sizes):
        rows = [p["results"][index] for p in parsed]
        images = sum(r["images"] for r in rows)
        table.append({
            "batch_size": batch_size,
            "images_per_s": round(sum(r["images"] / r["wall_s"] for r in rows), 2),
            "pass_ms_median": round(statistics.median(r["pass_ms_median"] for r in rows), 1),
            "cpu_ms_per_image": round(1000 * sum(r["cpu_s"] for r in rows) / images, 2),
        })  # fmt: skip
    best = max(table, key=lambda row: row["images_per_s"])
    return {"workers": workers, "torch_threads": parsed[0]["threads"], "batches": table, "best": best,
            "others_cpu_share": round(cpu["others"] / (cpu["wall"] * psutil.cpu_count()), 3)}  # fmt: skip


# --- the endpoint -----------------------------------------------------------------------------------------


def multipart(data: bytes) -> tuple[bytes, str]:
    """A ready-made multipart body with one ``image`` file field (built once: the client should cost the
    machine as little CPU as possible, since it shares the cores with the server)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def run_level(url: str, bodies: list[tuple[bytes, str]], clients: int, seconds: float, groups: dict | None = None) -> dict:
    """``clients`` closed-loop threads for ``seconds``; images/s counts the answers within that window,
    latencies are those of every answer (including the last ones after it)."""
    host, port = url.removeprefix("http://").split(":")
    lock = threading.Lock()
    latencies: list[float] = []
    in_window = [0]
    failures: list[str] = []
    stop_at = [0.0]

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        index = offset
        try:
            while time.perf_counter() < stop_at[0]:
                body, content_type = bodies[index % len(bodies)]
                index += clients
                started = time.perf_counter()
                conn.request("POST", "/classify", body=body, headers={"Content-Type": content_type})
                response = conn.getresponse()
                payload = response.read()
                ended = time.perf_counter()
                with lock:
                    if response.status == 200:
                        latencies.append(ended - started)
                        in_window[0] += ended <= stop_at[0]
                    else:
                        failures.append(f"{response.status}: {payload[:200]!r}")
        finally:
            conn.close()

    before = metrics(url)
    meter = CpuMeter(groups) if groups else None
    if meter:
        meter.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(worker, i) for i in range(clients)]:
            future.result()
    cpu = meter.stop() if meter else None
    after = metrics(url)
    delta = {key: after[key] - before[key] for key in after}
    ms = np.asarray(latencies) * 1000
    level = {
        "clients": clients,
        "answered": len(latencies),
        "failed": len(failures),
        "failures_sample": failures[:3],
        "images_per_s": round(in_window[0] / seconds, 2),
        "latency_p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "latency_p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "latency_mean_ms": round(float(ms.mean()), 1) if len(ms) else None,
        "mean_batch_size": round(delta["batched_images"] / delta["batches"], 2) if delta["batches"] else None,
        # BentoML's request-duration histograms: the API service's whole /classify, and the model service's
        # /forward as each request sees it (queue wait in the batcher + the batch's forward pass + its I/O).
        "server_classify_mean_ms": round(1000 * delta["classify_s"] / delta["classify_n"], 1) if delta["classify_n"] else None,
        "model_forward_call_mean_ms": round(1000 * delta["forward_s"] / delta["forward_n"], 1) if delta["forward_n"] else None,
    }  # fmt: skip
    if cpu is not None:
        level["cpu_ms_per_image"] = per_image_ms(cpu, len(latencies))
        level["cpu_busy_share"] = round(1 - cpu["idle"] / (cpu["wall"] * psutil.cpu_count()), 3)
        level["others_cpu_share"] = round(cpu["others"] / (cpu["wall"] * psutil.cpu_count()), 3)
    return level


# --- py-spy -----------------------------------------------------------------------------------------------

# First rule that matches a sample's stack (frames joined, outermost first) names its category. The API
# service's rules come first; the model service's use the same table.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("decode + resize", ("decode_and_prepare", "overlay_png")),
    ("forward pass", ("serving/runtime.py",)),  # ServingModel.classify: normalise, forward, softmax
    ("access log + tracing", ("logging/__init__.py", "opentelemetry")),
    ("Prometheus metrics", ("prometheus_client",)),
    ("multipart parsing + upload temp file", ("multipart", "formparsers", "tempfile", "read_bytes")),
    ("client to the model service", ("_bentoml_impl/client", "httpx", "httpcore", "aiohttp")),
    ("(de)serialization (pickle, pydantic, JSON)", ("serde", "pickle", "io_models", "pydantic", "json")),
    ("batching dispatcher", ("marshal/dispatcher",)),
    ("HTTP server (uvicorn, starlette)", ("uvicorn", "starlette", "h11", "httptools")),
    ("other (event loop, threads)", ("",)),
]


def py_spy_record(pid: int, seconds: float, out: Path) -> subprocess.Popen:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "100", "--nonblocking", "--format", "raw",
                             "--output", str(out), "--duration", str(int(seconds))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


# A thread whose innermost frame is one of these is waiting, not working (py-spy counts a thread that is
# runnable but waiting for a core as active, which on a loaded machine includes these).
WAITING = ("Condition.wait", "EpollSelector.select", "Event.wait", "sleep (", "Thread.join", "_wait_for_tstate_lock")


def categorise(raw: Path) -> dict[str, float]:
    """Share of each category in py-spy's raw (collapsed) stacks, waiting threads left out."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if any(stack.rsplit(";", 1)[-1].startswith(name) for name in WAITING):
            continue
        for name, needles in CATEGORIES:
            if any(needle in stack for needle in needles):
                counts[name] += int(count)
                break
    total = sum(counts.values())
    return {name: round(count / total, 3) for name, count in counts.most_common()} if total else {}


def profile_level(url: str, bodies: list, roles: dict, args: argparse.Namespace, tmp: Path, groups: dict) -> dict:
    if not (shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists()):
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    seconds = max(5, int(args.seconds))
    recorders = {}
    for role in ("api", "model"):
        for i, proc in enumerate(roles[role]):
            recorders[f"{role}{i}"] = (py_spy_record(proc.pid, seconds, tmp / f"{role}{i}.txt"), tmp / f"{role}{i}.txt")
    time.sleep(1.0)  # py-spy attaches
    level = run_level(url, bodies, max(args.clients), seconds - 1.5, groups)
    out = {"level": level}
    for name, (recorder, path) in recorders.items():
        _, err = recorder.communicate(timeout=120)
        out[name] = categorise(path) if path.exists() else {"error": err[-500:]}
        if args.py_spy_keep and path.exists():
            args.py_spy_keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, args.py_spy_keep / path.name)
    return out


# --- main -----------------------------------------------------------------------------------------------


def median_level(levels: list[dict], state: str) -> dict:
    """Median of each number over the rounds (the CPU table too); counts are summed."""
    out = {"clients": levels[0]["clients"], "state": state, "rounds": len(levels)}
    for key in ("images_per_s", "latency_p50_ms", "latency_p99_ms", "latency_mean_ms", "mean_batch_size",
                "server_classify_mean_ms", "model_forward_call_mean_ms", "cpu_busy_share"):  # fmt: skip
        values = [lv[key] for lv in levels if lv.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    out["images_per_s_rounds"] = [lv["images_per_s"] for lv in levels]
    out["answered"] = sum(lv["answered"] for lv in levels)
    out["failed"] = sum(lv["failed"] for lv in levels)
    if all("cpu_ms_per_image" in lv for lv in levels):
        out["cpu_ms_per_image"] = {k: round(statistics.median(lv["cpu_ms_per_image"][k] for lv in levels), 2)
                                   for k in levels[0]["cpu_ms_per_image"]}  # fmt: skip
    return out


def main() -> int:
    args = parse_args()
    if args.raw_worker:
        return raw_worker(args.raw_worker)
    server_env = dict(item.split("=", 1) for item in args.env)
    images, source = load_images(args.images)
    bodies = [multipart(data) for data in images]
    top_clients, low_clients = max(args.clients), min(args.clients)
    order = sorted(set(args.clients), reverse=True)  # in a round: the highest concurrency first
    load_before = os.getloadavg()
    rounds: list[dict] = []
    profile = None
    with tempfile.TemporaryDirectory(prefix="bench-endpoint-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = register_model(tmp, args.arch, args.img_size)
        process, url = start_server(tmp, server_env)
        try:
            setup = model_service_setup(tmp / "server.log")
            roles = server_processes(process)
            groups = {"client": [psutil.Process()], "api": roles["api"], "model": roles["model"], "supervisor": roles["supervisor"]}
            # Warm-up, not timed: BentoML's dispatcher serves its first ~10 requests one at a time while it
            # calibrates its cost model.
            run_level(url, bodies, 1, 3.0)
            # The lowest concurrency once on the fresh server, before any burst: the dispatcher holds a lone
            # request back for about the mean queue wait of its last 50 batches, so right after a burst a
            # single client is slower, until light traffic has replaced those batches (see BENCHMARKS.md).
            if args.wait_quiet:
                wait_quiet(groups, args.wait_quiet)
            fresh = run_level(url, bodies, low_clients, args.seconds, groups)
            run_level(url, bodies, top_clients, 5.0)  # warm-up burst: the cost of larger batches
            for _ in range(args.rounds):
                quiet = wait_quiet(groups, args.wait_quiet) if args.wait_quiet else None
                raw = run_raw(model_dir, setup, len(roles["model"]), args, groups, server_env)
                levels = [run_level(url, bodies, clients, args.seconds, groups) for clients in order]
                rounds.append({"others_cpu_share_before": quiet, "raw": raw, "levels": levels})
            if args.py_spy:
                profile = profile_level(url, bodies, roles, args, tmp, groups)
        finally:
            stop_server(process)
    load_after = os.getloadavg()

    raw_rows = {}
    for index, batch_size in enumerate(args.batch_sizes):
        rows = [r["raw"]["batches"][index] for r in rounds]
        raw_rows[batch_size] = {
            "batch_size": batch_size,
            "images_per_s": round(statistics.median(r["images_per_s"] for r in rows), 2),
            "images_per_s_rounds": [r["images_per_s"] for r in rows],
            "pass_ms_median": round(statistics.median(r["pass_ms_median"] for r in rows), 1),
            "cpu_ms_per_image": round(statistics.median(r["cpu_ms_per_image"] for r in rows), 2),
        }  # fmt: skip
    best = max(raw_rows.values(), key=lambda row: row["images_per_s"])
    levels = [median_level([fresh], "fresh server, before any burst")]
    for index, clients in enumerate(order):
        state = "sustained" if clients == top_clients else f"right after the {top_clients}-client level"
        levels.append(median_level([r["levels"][index] for r in rounds], state))
    top = levels[1]
    # Per round: that round's top-concurrency level against that round's best raw forward.
    ratios = [r["levels"][0]["images_per_s"] / max(row["images_per_s"] for row in r["raw"]["batches"]) for r in rounds]
    result = {
        "benchmark": "endpoint",
        "label": args.label,
        "arch": args.arch,
        "img_size": args.img_size,
        "server_env": server_env,
        "model_service": setup | {"workers": rounds[0]["raw"]["workers"]},
        "images": source,
        "machine": f"{cpu_model()}, {psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}",
        "load_average_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "others_cpu_share_during_raw": [r["raw"]["others_cpu_share"] for r in rounds],
        "others_cpu_share_during_levels": [fresh["others_cpu_share"]] + [lv["others_cpu_share"] for r in rounds for lv in r["levels"]],
        "raw_forward": list(raw_rows.values()),
        "raw_best": best,
        "levels": levels,
        "ratio_top_endpoint_to_raw_best": round(top["images_per_s"] / best["images_per_s"], 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
        "rounds": rounds,
        "fresh_level": fresh,
    }  # fmt: skip
    if profile is not None:
        result["py_spy_profile"] = profile
    print(json.dumps(result, indent=2))
    print_tables(result, args)
    return 1 if any(level["failed"] for level in levels) else 0


# CPU-ms per image: (column, key or (total key, minus key)).
CPU_COLUMNS = [
    ("client", "client"),
    ("API event loop", "api_loop"),
    ("API decode threads", ("api", "api_loop")),
    ("model event loop", "model_loop"),
    ("model forward threads", ("model", "model_loop")),
    ("BentoML supervisor", "supervisor"),
    ("other processes", "others"),
    ("idle", "idle"),
]


def _cpu_cell(cpu: dict, key) -> str:
    if isinstance(key, tuple):
        return f"{cpu[key[0]] - cpu[key[1]]:.1f}" if key[0] in cpu and key[1] in cpu else ""
    return f"{cpu[key]:.1f}" if key in cpu else ""


def print_tables(result: dict, args: argparse.Namespace) -> None:
    ms = result["model_service"]
    print(f"\nraw forward ({ms['workers']} process(es) x {ms['torch_threads']} torch threads, {ms['device']}; "
          f"median of {args.rounds} rounds)\n")  # fmt: skip
    print("| batch | images/s | ms per pass | CPU-ms per image |")
    print("| ---: | ---: | ---: | ---: |")
    for row in result["raw_forward"]:
        print(f"| {row['batch_size']} | {row['images_per_s']} | {row['pass_ms_median']} | {row['cpu_ms_per_image']} |")
    print(f"\nendpoint (max batch {ms['max_batch_size']}; {args.seconds:g} s per level, median of {args.rounds} rounds "
          "but for the fresh-server level)\n")  # fmt: skip
    print("| clients | images/s | p50 ms | p99 ms | mean batch | /classify ms (API service) | /forward ms (model service: queue + pass) | failed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lv in result["levels"]:
        print(f"| {lv['clients']} ({lv['state']}) | {lv['images_per_s']} | {lv['latency_p50_ms']} | {lv['latency_p99_ms']} | "
              f"{lv['mean_batch_size']} | {lv['server_classify_mean_ms']} | {lv['model_forward_call_mean_ms']} | {lv['failed']} |")  # fmt: skip
    best = result["raw_best"]
    print(f"\n**ratio {result['levels'][1]['clients']}-client endpoint / best raw forward (batch {best['batch_size']}, "
          f"{best['images_per_s']} images/s): {result['ratio_top_endpoint_to_raw_best']}** (per round: {result['ratio_per_round']})")  # fmt: skip
    print("\nCPU-ms per image answered (a busy machine has 1000 x CPUs CPU-ms per second to give)\n")
    print("| level | " + " | ".join(name for name, _ in CPU_COLUMNS) + " |")
    print("| --- |" + " ---: |" * len(CPU_COLUMNS))
    raw_cells = ["" for _ in CPU_COLUMNS]
    raw_cells[[k for _, k in CPU_COLUMNS].index(("model", "model_loop"))] = f"{best['cpu_ms_per_image']:.1f}"
    print(f"| raw forward alone, batch {best['batch_size']} | " + " | ".join(raw_cells) + " |")
    for lv in result["levels"]:
        cpu = lv.get("cpu_ms_per_image", {})
        print(f"| {lv['clients']} client(s), {lv['state']} | " + " | ".join(_cpu_cell(cpu, key) for _, key in CPU_COLUMNS) + " |")
    print(f"\nload average (1 min) before / after: {result['load_average_1m_before_after']}; other processes' share of "
          f"the CPUs during the raw forward: {result['others_cpu_share_during_raw']}, during the endpoint levels: "
          f"{result['others_cpu_share_during_levels']}")  # fmt: skip
    profile = result.get("py_spy_profile")
    if profile and "level" in profile:
        print(f"\npy-spy, one extra {profile['level']['clients']}-client level ({profile['level']['images_per_s']} images/s "
              "while sampled): share of each process's non-waiting samples\n")  # fmt: skip
        for name, shares in profile.items():
            if name != "level":
                print(f"- {name}: " + (", ".join(f"{k} {v:.0%}" for k, v in shares.items()) if "error" not in shares else str(shares)))
    elif profile:
        print(f"\npy-spy: {profile}")


if __name__ == "__main__":
    sys.exit(main())
