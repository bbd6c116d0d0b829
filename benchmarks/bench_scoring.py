"""Benchmark: batch scoring end to end vs the raw model forward, and peak memory for N vs 4N images.

1. Throughput, in one process: the model forward alone on images decoded and transformed beforehand
   (``raw``), then ``skinattn.scoring.score_source`` over the same images in a folder (``end to end``:
   listing, reading, decoding in DataLoader workers, forward, committing chunks, merging the outputs).
   The ratio end-to-end / raw says what the loader and the bookkeeping cost (the aim: under 15 %).
   The loader alone (no model) gives its ceiling: the forward rate a device may reach before the loader
   becomes the bottleneck.
2. Memory: ``score_source`` over N and over 4N images, each in a fresh subprocess that reports its peak
   memory (VmHWM) and the peak PSS of the whole process tree, workers included. Bounded memory means a
   ratio near 1.

Images: the first images of ``$SKINATTN_REAL_DATA/ham10000-224/images`` (real 224 px JPEGs), copied to a
temporary folder; synthetic 224 px JPEGs when the real ones are not available. Prints one JSON object and
a Markdown table. Usage:

    .venv/bin/python benchmarks/bench_scoring.py [--arch resnet18] [--repeats 3] [--images 128] [--memory-images 400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_model
from PIL import Image

from skinattn.data.images import open_image
from skinattn.models import create_model, eval_transform, load_model, save_model
from skinattn.scoring import ScoreSettings, score_source


def make_images(folder: Path, count: int) -> str:
    """Fill ``folder`` with ``count`` JPEGs: real HAM10000 224 px copies when available, else synthetic."""
    folder.mkdir(parents=True, exist_ok=True)
    real = Path(os.environ.get("SKINATTN_REAL_DATA", "")) / "ham10000-224" / "images"
    sources = sorted(real.glob("*.jpg"))[:count] if real.is_dir() else []
    if len(sources) == count:
        for path in sources:
            shutil.copyfile(path, folder / path.name)
        return f"real HAM10000 224 px JPEGs ({real})"
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((224, 224), Image.Resampling.BICUBIC).save(folder / f"IMG_{i:06d}.jpg", quality=90)
    return "synthetic 224 px JPEGs"


@torch.inference_mode()
def raw_forward_rate(model_dir: Path, folder: Path, batch_size: int, device: torch.device) -> float:
    """Images per second of the forward pass alone, on tensors prepared beforehand (the best case)."""
    model = load_model(model_dir, map_location=device)
    transform = eval_transform(model.config)
    images = torch.stack([transform(open_image(str(p))) for p in sorted(folder.glob("*.jpg"))])
    model(images[:batch_size].to(device))  # warm-up: first-call allocations, kernel selection
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        model(images[i:i + batch_size].to(device)).float().softmax(dim=1).cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


def loader_only_rate(model_dir: Path, folder: Path, settings: ScoreSettings) -> float:
    """Images per second the scoring DataLoader delivers with no model behind it: the loader's ceiling."""
    from torch.utils.data import DataLoader

    from skinattn.scoring import list_archive
    from skinattn.scoring.dataset import ChunkBatches, ScoreImages, collate

    items = list_archive(str(folder)).items
    config = load_model(model_dir).config
    loader = DataLoader(ScoreImages(items, config), batch_sampler=ChunkBatches([range(len(items))], settings.batch_size),
                        num_workers=settings.workers, collate_fn=collate)
    start = time.perf_counter()
    count = sum(len(batch.positions) for batch in loader)
    return count / (time.perf_counter() - start)


def end_to_end_rate(model_dir: Path, folder: Path, out: Path, settings: ScoreSettings) -> float:
    start = time.perf_counter()
    result = score_source(str(folder), out, str(model_dir), settings)
    seconds = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"bench_scoring: {result.failed} image(s) failed; see {result.errors}")
    return result.scored / seconds


def _status_kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _tree_pss_kib() -> int:
    """Proportional set size of this process plus its children (DataLoader workers): shared pages once."""
    pids = ["self"] + [c for task in Path("/proc/self/task").iterdir()
                       for c in (task / "children").read_text().split()]
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:  # a worker that exited between listing and reading
            pass
    return total


def memory_probe(args: argparse.Namespace) -> int:
    """Subprocess mode: score a folder; print this process's peak RSS (VmHWM, exact) and the peak PSS of
    the process tree (workers included, sampled every 50 ms), in MiB.

    ``ru_maxrss`` is not used: Linux carries it across exec, so it would report the parent's size.
    """
    settings = ScoreSettings(batch_size=args.batch_size, workers=args.workers, device=args.device,
                             chunk_size=args.chunk_size, progress=False)
    peak_tree = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak_tree[0] = max(peak_tree[0], _tree_pss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = score_source(args.probe_folder, Path(args.probe_out), args.probe_model, settings)
    stop.set()
    sampler.join()
    print(json.dumps({"scored": result.scored, "peak_mib": _status_kib("self", "VmHWM") / 1024,
                      "tree_peak_mib": peak_tree[0] / 1024}))
    return 0


def measure_memory(model_dir: Path, folder: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--probe-folder", str(folder), "--probe-out", str(out),
               "--probe-model", str(model_dir), "--batch-size", str(args.batch_size), "--workers", str(args.workers),
               "--device", args.device, "--chunk-size", str(args.chunk_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18", help="backbone for the throughput run (default resnet18, 224 px)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating raw / end-to-end runs; medians reported")
    parser.add_argument("--images", type=int, default=128, help="images for the throughput run (default 128)")
    parser.add_argument("--memory-arch", default="resnet10t", help="backbone for the memory runs (default resnet10t)")
    parser.add_argument("--memory-images", type=int, default=400, help="N of the N vs 4N memory runs (default 400)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--probe-folder", help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", help=argparse.SUPPRESS)
    parser.add_argument("--probe-model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe_folder:
        return memory_probe(args)

    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as root_name:
        root = Path(root_name)
        torch.manual_seed(0)
        model_dir = save_model(create_model(args.arch, img_size=224), root / "model")
        images_kind = make_images(root / "throughput", args.images)
        settings = ScoreSettings(batch_size=args.batch_size, workers=args.workers, device=args.device,
                                 chunk_size=args.chunk_size, progress=False)
        # Alternate the two measurements and keep the medians: the machine may be shared.
        raws, ends = [], []
        for _ in range(args.repeats):
            raws.append(raw_forward_rate(model_dir, root / "throughput", args.batch_size, device))
            ends.append(end_to_end_rate(model_dir, root / "throughput", root / "out" / "throughput.csv", settings))
        raw, end_to_end = statistics.median(raws), statistics.median(ends)
        loader_only = loader_only_rate(model_dir, root / "throughput", settings)

        memory_model = save_model(create_model(args.memory_arch, img_size=224), root / "memory-model")
        n = args.memory_images
        make_images(root / "n", n)
        make_images(root / "4n", 4 * n)
        small = measure_memory(memory_model, root / "n", root / "out" / "n.csv", args)
        large = measure_memory(memory_model, root / "4n", root / "out" / "4n.csv", args)

    result = {
        "benchmark": "scoring",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}",
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "images": images_kind,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "chunk_size": args.chunk_size,
        "throughput": {
            "arch": f"{args.arch} + SA, 224 px",
            "images": args.images,
            "repeats": args.repeats,
            "raw_forward_images_per_s_runs": [round(x, 2) for x in raws],
            "end_to_end_images_per_s_runs": [round(x, 2) for x in ends],
            "raw_forward_images_per_s": round(raw, 2),
            "end_to_end_images_per_s": round(end_to_end, 2),
            "end_to_end_over_raw": round(end_to_end / raw, 3),
            "loader_cost": round(1 - end_to_end / raw, 3),
            "loader_only_images_per_s": round(loader_only, 2),
        },
        "memory": {
            "arch": f"{args.memory_arch} + SA, 224 px",
            "n": n,
            "peak_mib_n": round(small["peak_mib"], 1),
            "peak_mib_4n": round(large["peak_mib"], 1),
            "peak_ratio_4n_over_n": round(large["peak_mib"] / small["peak_mib"], 3),
            "tree_pss_peak_mib_n": round(small["tree_peak_mib"], 1),
            "tree_pss_peak_mib_4n": round(large["tree_peak_mib"], 1),
            "tree_pss_ratio_4n_over_n": round(large["tree_peak_mib"] / small["tree_peak_mib"], 3),
        },
    }
    print(json.dumps(result, indent=2))
    t, m = result["throughput"], result["memory"]
    print()
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| raw forward, {t['arch']} (images/s) | {t['raw_forward_images_per_s']} |")
    print(f"| end to end `score_source` (images/s) | {t['end_to_end_images_per_s']} |")
    print(f"| end to end / raw | {t['end_to_end_over_raw']} (loader cost {t['loader_cost']:.1%}) |")
    print(f"| loader alone, no model, {args.workers} worker(s) (images/s) | {t['loader_only_images_per_s']} |")
    print(f"| peak RSS of the scoring process, {n} / {4 * n} images (MiB) | {m['peak_mib_n']} / {m['peak_mib_4n']} |")
    print(f"| peak ratio 4N / N, scoring process | {m['peak_ratio_4n_over_n']} |")
    print(f"| peak PSS incl. workers, {n} / {4 * n} images (MiB) | {m['tree_pss_peak_mib_n']} / {m['tree_pss_peak_mib_4n']} |")
    print(f"| peak ratio 4N / N, incl. workers | {m['tree_pss_ratio_4n_over_n']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
