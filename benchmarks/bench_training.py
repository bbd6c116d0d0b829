"""Training throughput: Soft Attention's cost, and whether the input pipeline keeps up.

Two measurements, each a ratio taken inside one run so that machine load affects both sides alike:

1. ``sa_vs_baseline``: training images/s (forward, backward, Adam step) of the same small architecture
   with and without the SA block, on the same pre-loaded batch.
2. ``pipeline_vs_preloaded``: training images/s of the SA model fed by the real input pipeline (the
   resized-image cache of a prepared synthetic data set, online augmentation, the balanced index,
   DataLoader workers) against the same model fed one pre-loaded tensor batch over and over. A ratio
   near 1 means the input pipeline is not the bottleneck.

Both sides alternate in rounds; images/s are medians over rounds, ratios the median of per-round ratios. Uses the trainer's runtime switches
(bf16 autocast and channels_last on CUDA). Prints one JSON object, then a Markdown table.

    .venv/bin/python benchmarks/bench_training.py            # defaults: resnet18, 64 px, batch 16
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from skinattn.constants import HAM10000_CLASSES
from skinattn.data.prepare import prepare
from skinattn.data.schema import ManifestInfo, write_manifest
from skinattn.data.synthetic import make_sample_dataset
from skinattn.models import create_model
from skinattn.training.config import AugmentConfig, DataConfig, TrainSection
from skinattn.training.datasets import (
    EpochSampler,
    SplitImages,
    load_prepared,
    resolve_cache,
    train_transform,
    training_positions,
)
from skinattn.training.device import Runtime, resolve_runtime


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet18", help="a small architecture (default resnet18)")
    parser.add_argument("--img-size", type=int, default=64, help="input side in pixels (default 64)")
    parser.add_argument("--batch-size", type=int, default=16, help="default 16 (the paper's)")
    parser.add_argument("--steps", type=int, default=10, help="training steps per round (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the pipeline (default 2)")
    parser.add_argument("--per-class", type=int, default=20, help="synthetic images per class (default 20)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    return parser.parse_args(argv)


def make_step(model: torch.nn.Module, runtime: Runtime) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One optimisation step as the trainer does it (autocast forward, fp32 loss, Adam)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, eps=0.1)
    criterion = torch.nn.CrossEntropyLoss()
    model.train()

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        images, labels = runtime.to_device(images), labels.to(runtime.device, non_blocking=runtime.pin_memory)
        with runtime.autocast():
            logits = model(images)
        loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def images_per_second(step: Callable, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], steps: int,
                      runtime: Runtime) -> float:
    images = 0
    synchronise = torch.cuda.synchronize if runtime.device.type == "cuda" else (lambda: None)
    synchronise()
    start = time.perf_counter()
    for _ in range(steps):
        batch, labels = next(batches)
        step(batch, labels)
        images += labels.shape[0]
    synchronise()
    return images / (time.perf_counter() - start)


def build_model(arch: str, soft_attention: bool, size: int, runtime: Runtime) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(arch, soft_attention=soft_attention, img_size=size).to(runtime.device)
    return model.to(memory_format=torch.channels_last) if runtime.channels_last else model


def prepared_sample(root: Path, per_class: int, size: int) -> Path:
    """Synthetic HAM10000-layout images -> manifest -> prepare with a cache at ``size``."""
    metadata = make_sample_dataset(root / "images", per_class=per_class, size=size, seed=0)
    meta = pd.read_csv(metadata, dtype=str, keep_default_na=False)
    frame = pd.DataFrame({
        "image_id": meta["image_id"],
        "image_path": [str(root / "images" / f"{i}.jpg") for i in meta["image_id"]],
        "label": meta["dx"],
        "lesion_id": meta["lesion_id"],
    })
    write_manifest(frame, ManifestInfo(classes=list(HAM10000_CLASSES), format="ham10000"), root / "manifest")
    prepare(root / "manifest", root / "prepared", cache_size=size, progress=False)
    return root / "prepared"


def pipeline_batches(prepared: Path, size: int, batch_size: int, runtime: Runtime, mean, std) -> Iterator:
    """Endless batches from the training input pipeline, one fresh epoch (new order) after another."""
    splits = load_prepared(prepared)
    cache = resolve_cache(splits.train, "train", size, DataConfig(prepared=str(prepared), cache="build"), False)
    dataset = SplitImages(splits.train, splits.classes, size, train_transform(AugmentConfig(), mean, std), cache,
                          training_positions(splits, "index"))
    sampler = EpochSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=runtime.num_workers,
                        pin_memory=runtime.pin_memory, drop_last=True, persistent_workers=runtime.num_workers > 0)
    for epoch in itertools.count():
        sampler.set_epoch(epoch)
        yield from loader


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime = resolve_runtime(TrainSection(device=args.device), args.workers)
    batch = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    labels = torch.arange(args.batch_size) % len(HAM10000_CLASSES)
    preloaded = itertools.repeat((batch, labels))

    steps = {sa: make_step(build_model(args.arch, sa, args.img_size, runtime), runtime) for sa in (True, False)}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepared_sample(Path(tmp), args.per_class, args.img_size)
        model = build_model(args.arch, True, args.img_size, runtime)
        pipeline_step = make_step(model, runtime)
        batches = pipeline_batches(prepared, args.img_size, args.batch_size, runtime, model.config.mean, model.config.std)
        # Warm-up: first calls allocate, start workers, fill caches.
        for step in (*steps.values(), pipeline_step):
            images_per_second(step, preloaded, 2, runtime)
        images_per_second(pipeline_step, batches, 2, runtime)

        rounds: dict[str, list[float]] = {"sa": [], "baseline": [], "pipeline": [], "preloaded": []}
        for _ in range(args.rounds):
            rounds["sa"].append(images_per_second(steps[True], preloaded, args.steps, runtime))
            rounds["baseline"].append(images_per_second(steps[False], preloaded, args.steps, runtime))
            rounds["pipeline"].append(images_per_second(pipeline_step, batches, args.steps, runtime))
            rounds["preloaded"].append(images_per_second(pipeline_step, preloaded, args.steps, runtime))
        batches.close()

    median = {name: statistics.median(values) for name, values in rounds.items()}
    result = {
        "benchmark": "training",
        "arch": args.arch,
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "runtime": runtime.describe(),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "cuda": torch.cuda.get_device_name(runtime.device) if runtime.device.type == "cuda" else None},
        "images_per_second": {k: round(v, 2) for k, v in median.items()},
        "rounds_images_per_second": {k: [round(v, 2) for v in values] for k, values in rounds.items()},
        # Ratios are paired within a round (both sides ran back to back) and the median round is taken,
        # which is steadier than a ratio of medians when the machine's load drifts.
        "sa_vs_baseline": round(statistics.median(a / b for a, b in zip(rounds["sa"], rounds["baseline"])), 3),
        "pipeline_vs_preloaded": round(
            statistics.median(a / b for a, b in zip(rounds["pipeline"], rounds["preloaded"])), 3
        ),
    }
    print(json.dumps(result))
    print()
    print(f"| {args.arch} @ {args.img_size}px, batch {args.batch_size}, {runtime.describe()['device']} | images/s |")
    print("| --- | ---: |")
    print(f"| with SA (pre-loaded batch) | {median['sa']:.1f} |")
    print(f"| without SA (pre-loaded batch) | {median['baseline']:.1f} |")
    print(f"| **ratio SA / baseline** | **{result['sa_vs_baseline']:.3f}** |")
    print(f"| with SA, input pipeline (cache + augmentation + {runtime.num_workers} workers) | {median['pipeline']:.1f} |")
    print(f"| with SA, pre-loaded batch | {median['preloaded']:.1f} |")
    print(f"| **ratio pipeline / pre-loaded** | **{result['pipeline_vs_preloaded']:.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
