"""Benchmark: decoding a JPEG in full vs at the reduced DCT scale a model needs (``decode_image(at_least=)``).

Two inputs: a 6000×4500 photo-like JPEG (the size of large ISIC Archive images; synthesised by upscaling a
real HAM10000 image when $SKINATTN_REAL_DATA is set, else random smooth content) and the real 600×450
HAM10000 JPEGs of $SKINATTN_REAL_DATA/ham10000-fullsize-sample. For each, and each mode (full decode,
``at_least`` = 299 and 224), it reports the decoded size, the mean decode+resize time, and the peak RSS of a
fresh process doing only that (so Pillow's C allocations, which tracemalloc cannot see, are counted).
Prints one JSON object and a Markdown table. Usage:

    .venv/bin/python benchmarks/bench_decode_scale.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _machine import cpu_model
from PIL import Image

MODES = {"full": None, "at_least=299": 299, "at_least=224": 224}

_CHILD = """
import resource, sys, time
from skinattn.data.cache import resize_image
from skinattn.data.images import decode_image
data = open(sys.argv[1], "rb").read()
at_least = int(sys.argv[2]) or None
repeats = int(sys.argv[3])
started = time.perf_counter()
for _ in range(repeats):
    image = decode_image(data, sys.argv[1], at_least=at_least)
    resize_image(image, at_least or 299)
elapsed = (time.perf_counter() - started) / repeats
print(image.size[0], image.size[1], elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def large_jpeg(folder: Path, real: Path | None) -> Path:
    if real is not None:
        base = Image.open(real).convert("RGB")
    else:
        rng = np.random.default_rng(0)
        base = Image.fromarray(rng.integers(0, 255, (113, 150, 3), dtype=np.uint8))
    path = folder / "large_6000x4500.jpg"
    base.resize((6000, 4500), Image.Resampling.BICUBIC).save(path, quality=92)
    return path


def measure(path: Path, at_least: int | None, repeats: int) -> dict:
    output = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(at_least or 0), str(repeats)],
                            check=True, capture_output=True, text=True).stdout.split()  # fmt: skip
    width, height, seconds, rss = int(output[0]), int(output[1]), float(output[2]), int(output[3])
    return {"decoded": f"{width}x{height}", "ms_per_image": round(seconds * 1000, 1), "peak_rss_mb": round(rss / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    sample = Path(os.environ.get("SKINATTN_REAL_DATA", "/nonexistent")) / "ham10000-fullsize-sample"
    reals = sorted(sample.glob("**/*.jpg"))[:1]
    with tempfile.TemporaryDirectory() as scratch:
        inputs = {"6000x4500 JPEG": large_jpeg(Path(scratch), reals[0] if reals else None)}
        if reals:
            inputs["HAM10000 600x450 JPEG"] = reals[0]
        results = {name: {mode: measure(path, size, args.repeats) for mode, size in MODES.items()}
                   for name, path in inputs.items()}  # fmt: skip
    print(json.dumps({"cpu": cpu_model(), "repeats": args.repeats, "results": results}, indent=2))
    print("\n| input | mode | decoded | ms per image (decode+resize) | peak RSS MB |\n| --- | --- | --- | ---: | ---: |")
    for name, by_mode in results.items():
        for mode, row in by_mode.items():
            print(f"| {name} | {mode} | {row['decoded']} | {row['ms_per_image']} | {row['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
