"""Registering, listing, downloading and promoting, on the local and the S3 backend alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from skinattn.errors import ModelError
from skinattn.models import load_model
from skinattn.registry import Registry, RegistryError, fingerprint_manifest


def test_register_stores_every_part_of_a_version(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path], tmp_path: Path
) -> None:
    metrics = write_metrics(accuracy=0.81, auc={"weighted": 0.93}, confusion=[[3, 1], [0, 4]])
    version = registry.register(model_dir, metrics, run_id="run-1", data_fingerprint="sha256:abc")

    assert version.version == "v1"
    assert version.metrics == {"accuracy": 0.81, "auc.weighted": 0.93}
    assert version.params == {"epochs": 1, "lr": 0.01}  # from the card's metadata.params
    assert version.run_id == "run-1" and version.data_fingerprint == "sha256:abc"
    assert version.model["arch"] == "resnet10t" and version.class_names == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert registry.get("v1") == version == registry.get(1) == registry.get("latest")

    out = registry.download("v1", tmp_path / "download")
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "metrics.json", "model.json", "model.safetensors",
                                                     "model_card.json"]
    assert (out / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    assert (out / "metrics.json").read_bytes() == metrics.read_bytes()  # the file as given: nothing dropped
    original, restored = load_model(model_dir), load_model(out)
    for (name, a), (_, b) in zip(original.state_dict().items(), restored.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_versions_are_numbered_and_never_rewritten(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    registry.register(model_dir, write_metrics(accuracy=0.5))
    first_record = registry.store.get("versions/000001.json")
    registry.register(model_dir, write_metrics(accuracy=0.6), params={"epochs": 3})

    listed = registry.versions()
    assert [v.version for v in listed] == ["v1", "v2"]
    assert [v.metrics["accuracy"] for v in listed] == [0.5, 0.6]
    assert listed[1].params == {"epochs": 3}
    assert registry.store.get("versions/000001.json") == first_record
    # Identical weights are stored once, by content.
    assert listed[0].files["model.safetensors"].key == listed[1].files["model.safetensors"].key


def test_promotion_follows_the_champion_challenger_rules(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    v1 = registry.register(model_dir, write_metrics(accuracy=0.80, loss=0.50))
    v2 = registry.register(model_dir, write_metrics(accuracy=0.85, loss=0.55))
    v3 = registry.register(model_dir, write_metrics(accuracy=0.85, loss=0.40))
    v4 = registry.register(model_dir, write_metrics(accuracy=0.70, loss=0.90))
    assert registry.production() is None

    first = registry.promote(v1.version, "accuracy")
    assert first.promoted and first.champion is None and registry.production() == v1

    better = registry.promote(v2.version, "accuracy")
    assert better.promoted and (better.candidate_value, better.champion_value) == (0.85, 0.80)
    assert registry.production() == v2

    tie = registry.promote(v3.version, "accuracy")
    assert not tie.promoted and "tie" in tie.reason and registry.production() == v2

    lower_loss = registry.promote(v3.version, "loss")  # lower is better for a loss
    assert lower_loss.promoted and registry.production() == v3

    worse = registry.promote(v4.version, "accuracy")
    assert not worse.promoted and "does not beat" in worse.reason and registry.production() == v3

    again = registry.promote(v3.version, "accuracy")
    assert not again.promoted and "already production" in again.reason

    forced = registry.promote(v4.version, "accuracy", force=True)
    assert forced.promoted and forced.forced and registry.production() == v4

    log = registry.promotions()
    assert [(p.version, p.previous, p.forced) for p in log] == [
        ("v1", None, False), ("v2", "v1", False), ("v3", "v2", False), ("v4", "v3", True)
    ]
    assert [p.sequence for p in log] == [1, 2, 3, 4]


def test_promotion_refuses_what_it_cannot_compare(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    v1 = registry.register(model_dir, write_metrics(accuracy=0.8))
    v2 = registry.register(model_dir, write_metrics(auc=0.9))
    registry.promote(v1.version, "accuracy")
    with pytest.raises(RegistryError, match="v2 has no metric 'accuracy'"):
        registry.promote(v2.version, "accuracy")
    with pytest.raises(RegistryError, match="production version v1 has no metric 'auc'"):
        registry.promote(v2.version, "auc")
    with pytest.raises(RegistryError, match="needs a metric"):
        registry.promote(v2.version)
    with pytest.raises(RegistryError, match="no version v9"):
        registry.promote("v9", "accuracy")
    assert registry.production() == v1


def test_unknown_versions_and_empty_registries_are_explained(registry: Registry) -> None:
    assert registry.versions() == [] and registry.production() is None
    with pytest.raises(RegistryError, match="no production version yet"):
        registry.get("production")
    with pytest.raises(RegistryError, match="no versions yet"):
        registry.get("latest")
    with pytest.raises(RegistryError, match="'best' is not a version"):
        registry.get("best")


def test_bad_model_folders_are_refused_before_anything_is_written(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path], tmp_path: Path
) -> None:
    metrics = write_metrics(accuracy=0.8)
    with pytest.raises(ModelError, match="no model card here"):
        registry.register(tmp_path, metrics)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_bytes((model_dir / "model.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"this is not safetensors")
    with pytest.raises(RegistryError, match="model.safetensors: not a readable safetensors file"):
        registry.register(broken, metrics)
    with pytest.raises(RegistryError, match="no numeric metric"):
        registry.register(model_dir, {"note": "no numbers"})
    assert registry.store.list("objects") == [] and registry.versions() == []


def test_manifest_fingerprint_follows_the_csv(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image_id,image_path,label,lesion_id\na,a.jpg,nv,a\n", encoding="utf-8")
    first = fingerprint_manifest(tmp_path)
    assert first.startswith("sha256:") and first == fingerprint_manifest(tmp_path / "manifest.csv")
    (tmp_path / "manifest.csv").write_text("image_id,image_path,label,lesion_id\na,a.jpg,mel,a\n", encoding="utf-8")
    assert fingerprint_manifest(tmp_path) != first
    with pytest.raises(RegistryError, match="no manifest.csv"):
        fingerprint_manifest(tmp_path / "nowhere")


def test_download_refuses_a_corrupted_object(
    tmp_path: Path, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    registry = Registry(tmp_path / "reg")
    version = registry.register(model_dir, write_metrics(accuracy=0.8))
    stored = tmp_path / "reg" / version.files["model.json"].key
    stored.chmod(0o644)
    stored.write_text("{}", encoding="utf-8")
    with pytest.raises(RegistryError, match="does not match its digest"):
        registry.download(version.version, tmp_path / "out")


def test_fetch_reuses_a_verified_copy_and_repairs_a_damaged_one(
    tmp_path: Path, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    """Scoring fetches registry versions into a cache keyed by version instead of a temporary folder per
    run, which a killed run used to leave behind (20 MB each)."""
    registry = Registry(tmp_path / "reg")
    version = registry.register(model_dir, write_metrics(accuracy=0.8))
    cache = tmp_path / "cache"
    first = registry.fetch("latest", cache_root=cache)
    assert first.parent.parent == cache / "models" and first.name == version.version
    assert (first / "model.safetensors").read_bytes() == (model_dir / "model.safetensors").read_bytes()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert registry.fetch(version.version, cache_root=cache) == first  # reused, not downloaded again
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    (first / "model.json").write_text("{}", encoding="utf-8")  # a damaged or half-copied cache entry
    (first / "metrics.json").unlink()
    again = registry.fetch(version.version, cache_root=cache)
    assert again == first and load_model(again) is not None
    assert (again / "metrics.json").is_file()
    assert [p.name for p in cache.rglob("*") if p.name.startswith(".")] == []  # no temporary files left
