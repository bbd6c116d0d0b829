"""``skinattn demo``: the most complete end-to-end path that exists, on the embedded synthetic data set.

Steps: write a synthetic data set in the HAM10000 layout -> build each small architecture with and
without Soft Attention -> save it (safetensors + card) -> load it back and check the logits are
unchanged -> classify the sample images -> write attention overlays for the SA models.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from skinattn.data.sources import open_image
from skinattn.data.synthetic import make_sample_dataset
from skinattn.fileio import write_json
from skinattn.inference import Predictor
from skinattn.models import arch_spec, create_model, list_archs, overlay, save_model
from skinattn.models.preprocess import preprocess_images


def run_demo(out: str | Path, per_class: int = 3, size: int = 64, seed: int = 0) -> dict:
    out = Path(out)
    data_dir = out / "data"
    metadata_csv = make_sample_dataset(data_dir, per_class=per_class, size=size, seed=seed, overwrite=True)
    metadata = pd.read_csv(metadata_csv)
    paths = [data_dir / f"{image_id}.jpg" for image_id in metadata["image_id"]]
    images = [open_image(str(p)) for p in paths]
    print(f"wrote {len(images)} synthetic images in the HAM10000 layout to {data_dir}")

    summary = {"data": str(metadata_csv), "models": []}
    small_archs = [a for a in list_archs() if arch_spec(a).small]
    for arch in tqdm(small_archs, desc="models", unit="arch"):
        for soft_attention in (True, False):
            torch.manual_seed(seed)
            model = create_model(arch, soft_attention=soft_attention, img_size=size).eval()
            name = f"{arch}-{'sa' if soft_attention else 'baseline'}"
            model_dir = save_model(model, out / "models" / name, metadata={"demo": True, "seed": seed})
            predictor = Predictor(model_dir)
            batch = preprocess_images(images, model.config)
            with torch.no_grad():
                round_trip_equal = bool(torch.equal(model(batch), predictor.model(batch)))
            predictions = predictor.predict(images, with_attention=soft_attention)
            if soft_attention:
                overlay_dir = out / "overlays" / name
                overlay_dir.mkdir(parents=True, exist_ok=True)
                for path, image, prediction in zip(paths, images, predictions):
                    overlay(image, prediction.heatmap).save(overlay_dir / f"{path.stem}_attention.png")
            agreement = sum(p.top_class == dx for p, dx in zip(predictions, metadata["dx"])) / len(images)
            summary["models"].append(
                {
                    "model": name,
                    "folder": str(model_dir),
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "round_trip_identical": round_trip_equal,
                    "untrained_accuracy": round(agreement, 3),
                }
            )
    write_json(out / "demo_summary.json", summary)
    print(json.dumps(summary["models"], indent=2))
    print(f"summary: {out / 'demo_summary.json'}; overlays: {out / 'overlays'}")
    return summary
