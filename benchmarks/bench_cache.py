"""Benchmark: decoding full-size JPEGs every epoch vs reading the preprocessing cache.

Reads a HAM10000-layout folder (default: $SKINATTN_REAL_DATA/ham10000-fullsize-sample, 600x450 JPEGs),
builds a cache at --size in a temporary folder, then times, per image and per epoch:

  decode          skinattn.data.images.open_image (full decode to RGB)
  decode+resize   what a loader without the cache does every epoch (skinattn.data.cache.load_resized)
  cache read      copying one image out of the cache's memory map (page cache warm: the normal case
                  after the first epoch; a cold read adds one sequential disk read of size*size*3 bytes)

Prints one JSON object and a Markdown table. Usage:

    .venv/bin/python benchmarks/bench_cache.py [--data DIR] [--size 224] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import cpu_model

from skinattn.data.cache import build_cache, load_resized
from skinattn.data.images import open_image

FULL_HAM10000_IMAGES = 10_015


def _epoch_seconds(step: Callable[[int], object], count: int, epochs: int) -> list[float]:
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for i in range(count):
            step(i)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_data = Path(os.environ.get("SKINATTN_REAL_DATA", "")) / "ham10000-fullsize-sample"
    parser.add_argument("--data", type=Path, default=default_data, help="HAM10000-layout folder of JPEGs")
    parser.add_argument("--size", type=int, default=224, help="cache resolution in pixels (default 224)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the images (default 3)")
    args = parser.parse_args(argv)

    metadata = args.data / "HAM10000_metadata.csv"
    if not metadata.is_file():
        print(f"bench_cache: no {metadata}; set SKINATTN_REAL_DATA or pass --data", file=sys.stderr)
        return 2
    rows = pd.read_csv(metadata, dtype=str, keep_default_na=False)
    frame = pd.DataFrame(
        {"image_id": rows["image_id"], "image_path": [str(args.data / f"{i}.jpg") for i in rows["image_id"]]}
    )
    locations = frame["image_path"].tolist()
    n = len(frame)
    first = open_image(locations[0])

    # Warm the OS page cache for the JPEGs so every method is timed on CPU work, not first disk reads.
    for location in locations:
        Path(location).read_bytes()
    decode = _epoch_seconds(lambda i: open_image(locations[i]), n, args.epochs)
    decode_resize = _epoch_seconds(lambda i: load_resized(locations[i], args.size), n, args.epochs)
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        cache = build_cache(frame, root, args.size, "bench", workers=1, progress=False)
        build_seconds = time.perf_counter() - start
        cache_read = _epoch_seconds(lambda i: np.array(cache[i]), n, args.epochs)
        cache_bytes = (Path(cache.path) / "images.npy").stat().st_size

    def per_image_ms(times: list[float]) -> float:
        return 1000 * statistics.median(times) / n

    decode_resize_ms = per_image_ms(decode_resize)
    cache_ms = per_image_ms(cache_read)
    result = {
        "benchmark": "cache",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "data": str(args.data),
        "images": n,
        "source_size": list(first.size),
        "cache_size": args.size,
        "epochs": args.epochs,
        "decode_ms_per_image": round(per_image_ms(decode), 3),
        "decode_resize_ms_per_image": round(decode_resize_ms, 3),
        "cache_read_ms_per_image": round(cache_ms, 4),
        "speedup": round(decode_resize_ms / cache_ms, 1),
        "cache_build_seconds": round(build_seconds, 3),
        "cache_bytes": cache_bytes,
        "full_ham10000_epoch_seconds_decode_resize": round(decode_resize_ms * FULL_HAM10000_IMAGES / 1000, 1),
        "full_ham10000_epoch_seconds_cache": round(cache_ms * FULL_HAM10000_IMAGES / 1000, 2),
    }
    print(json.dumps(result, indent=2))
    print()
    print("| method | ms / image | s / epoch of full HAM10000 (10,015 images, 1 core) |")
    print("| --- | ---: | ---: |")
    print(f"| decode {first.size[0]}x{first.size[1]} JPEG | {result['decode_ms_per_image']} | "
          f"{round(result['decode_ms_per_image'] * FULL_HAM10000_IMAGES / 1000, 1)} |")
    print(f"| decode + resize to {args.size} | {result['decode_resize_ms_per_image']} | "
          f"{result['full_ham10000_epoch_seconds_decode_resize']} |")
    print(f"| read from cache ({args.size} px) | {result['cache_read_ms_per_image']} | "
          f"{result['full_ham10000_epoch_seconds_cache']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
