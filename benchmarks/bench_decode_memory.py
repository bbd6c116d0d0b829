"""Benchmark: the endpoint's memory under many large-but-allowed images at once, with and without the
decode budget (``SKINATTN_DECODE_BUDGET_PIXELS``, serving/decode_budget.py).

Starts a real server (as bench_endpoint.py does) for each setting, then releases N clients together, each
posting the same 6300×6300 PNG (a flat picture: about 40 KB on the wire, 39.7 Mpx, just under the default
40 Mpx limit) for R rounds. Samples the RSS of the server's process tree every 20 ms. Reports peak and
final RSS, the answers by status and the wall time. "unbounded" sets the budget to N images; "default" leaves
it at its default (2 images). Prints one JSON object and a Markdown table. Usage:

    .venv/bin/python benchmarks/bench_decode_memory.py [--clients 16] [--rounds 2] [--side 6300]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
from _machine import cpu_model
from bench_endpoint import start_server, stop_server
from PIL import Image


def tree_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def run(setting: str, budget: int | None, png: bytes, args: argparse.Namespace) -> dict:
    if budget is None:
        os.environ.pop("SKINATTN_DECODE_BUDGET_PIXELS", None)
    else:
        os.environ["SKINATTN_DECODE_BUDGET_PIXELS"] = str(budget)
    with tempfile.TemporaryDirectory(prefix="skinattn-bench-decode-") as tmp:
        process, url = start_server(Path(tmp), args)
        try:
            idle = tree_rss(process.pid)
            peak, stop = [idle], threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], tree_rss(process.pid))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            statuses: collections.Counter[int] = collections.Counter()
            started = time.monotonic()
            for _ in range(args.rounds):
                gate = threading.Barrier(args.clients)

                def post(_: int) -> int:
                    with httpx.Client(base_url=url, timeout=300) as client:
                        gate.wait()
                        return client.post("/classify", files={"image": ("big.png", png, "image/png")}).status_code

                with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                    statuses.update(pool.map(post, range(args.clients)))
            seconds = time.monotonic() - started
            time.sleep(2)  # what the server keeps once the burst is over
            stop.set()
            sampler.join()
            after = tree_rss(process.pid)
        finally:
            stop_server(process)
    return {"setting": setting, "budget_pixels": budget, "idle_rss_mb": idle / 2**20, "peak_rss_mb": peak[0] / 2**20,
            "rss_after_mb": after / 2**20, "answers": dict(sorted(statuses.items())), "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--side", type=int, default=6300)
    parser.add_argument("--arch", default="resnet10t")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--max-batch-size", type=int, default=32)
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.new("RGB", (args.side, args.side), (180, 120, 90)).save(buffer, format="PNG")
    png = buffer.getvalue()
    runs = [run("unbounded", args.clients * args.side * args.side, png, args), run("default", None, png, args)]
    result = {"benchmark": "decode_memory", "cpu": cpu_model(), "cores": os.cpu_count(), "png_bytes": len(png),
              "pixels": args.side * args.side, "clients": args.clients, "rounds": args.rounds, "runs": runs}  # fmt: skip
    print(json.dumps(result, indent=2))
    print("\n| setting | peak RSS (MB) | RSS after (MB) | answers | seconds |\n| --- | ---: | ---: | --- | ---: |")
    for r in runs:
        answers = ", ".join(f"{code}: {n}" for code, n in r["answers"].items())
        print(f"| {r['setting']} | {r['peak_rss_mb']:,.0f} | {r['rss_after_mb']:,.0f} | {answers} | {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
