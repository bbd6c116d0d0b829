"""The reference distribution training stores with the model (its validation predictions), the registry
carrying it, and batch scoring's drift report against it: the validation images look like the training
data; a collection of one predicted class, or of flat grey images, does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from _drift_reference import uniform_jpegs

from skinattn.evaluation.distribution import read_reference
from skinattn.models import read_card
from skinattn.registry import Registry
from skinattn.scoring import ScoreSettings, score_source
from skinattn.scoring.tables import read_table
from skinattn.training import train
from skinattn.training.datasets import load_prepared

FAST = ScoreSettings(batch_size=16, workers=0, device="cpu", n_bootstrap=0, progress=False)


def test_training_stores_a_reference_that_scoring_compares_with(small_config: Any, prepared: Path, tmp_path: Path) -> None:
    result = train(small_config(tmp_path / "run", train={"epochs": 2, "monitor": "balanced_accuracy"}))
    val = load_prepared(prepared).val
    reference = read_reference(read_card(result.model_dir))
    assert reference is not None and reference["source"] == f"validation split, best epoch {result.best_epoch}"
    assert reference["images"] == len(val) == sum(reference["predicted"].values()) == sum(reference["confidence"])
    assert reference["labels"] == {c: int((val["label"] == c).sum()) for c in reference["predicted"]}
    assert 0 < reference["mean_confidence"] <= 1
    assert "reference" not in json.loads((tmp_path / "run" / "summary.json").read_text())  # in the card only
    assert sum(1 for n in reference["predicted"].values() if n) >= 2  # the premise of the one-class case below

    # (a) the validation images themselves, from the registry (which stores the card byte for byte)
    registry = Registry(str(tmp_path / "registry"))
    registry.register(result.model_dir, {"balanced_accuracy": result.best_value})
    assert read_reference(read_card(registry.fetch(registry.get("v1")))) == reference
    folder = tmp_path / "val"
    folder.mkdir()
    for path in val["image_path"]:
        shutil.copy(path, folder / Path(path).name)
    same = score_source(str(folder), tmp_path / "same" / "p.csv", "v1", FAST, registry_root=registry.uri)
    report = json.loads(same.drift.read_text())
    assert report["level"] == "none" and report["message"] == "looks like the training data"
    assert report["class_psi"] < 0.1 and report["confidence"]["psi"] < 0.1

    # (b) one predicted class only: the validation images of the least often predicted class, four times over
    table = read_table(same.predictions)
    rare = table["top_class"].value_counts().index[-1]
    skewed = tmp_path / "skewed"
    skewed.mkdir()
    for copy in range(4):
        for name in table.loc[table["top_class"] == rare, "file"]:
            shutil.copy(folder / name, skewed / f"{copy}_{name}")
    report = json.loads(score_source(str(skewed), tmp_path / "skewed.csv", "v1", FAST, registry_root=registry.uri)
                        .drift.read_text())  # fmt: skip
    assert report["level"] == "major"
    assert report["message"].startswith(f"differs from the training data: class {rare} predicted")

    # (c) flat grey images and files that are no images at all
    flat = tmp_path / "flat"
    uniform_jpegs(flat, 30, size=48)
    (flat / "broken.jpg").write_bytes(b"not a jpeg")
    degenerate = score_source(str(flat), tmp_path / "flat.csv", str(result.model_dir), FAST)
    report = json.loads(degenerate.drift.read_text())
    assert report["level"] in {"moderate", "major"} and report["message"].startswith("differs")
    assert report["inputs"]["errors"] == 1 and "1 of 31 files (3.2%) could not be scored" in report["notes"][0]
    summary = json.loads(degenerate.summary.read_text())
    assert summary["drift"]["level"] == report["level"] and summary["drift"]["reference_images"] == len(val)

