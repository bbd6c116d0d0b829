"""Every registered version carries its model card (issue 14, item 4): ``MODEL_CARD.md`` + ``model_card.json``
stored with the version, on both backends, shown by ``skinattn registry show --card``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from _registry_helpers import PYTHON, cli_env

from skinattn.model_card import CARD_JSON, CARD_MARKDOWN, build_card, render_markdown
from skinattn.models import create_model, read_card, save_model
from skinattn.registry import Registry
from skinattn.registry.records import encode

DATA_FACTS = {
    "format": "ham10000", "source": "s3://data/ham10000", "manifest": "/runs/prepared", "images": 60, "lesions": 50,
    "split": {"protocol": "grouped"}, "counts": {"train": {"mel": 20, "nv": 20, "total": 40},
                                                 "test": {"mel": 10, "nv": 10, "total": 20}},
}  # fmt: skip
EVALUATED = {
    "num_samples": 20, "accuracy": 0.75, "balanced_accuracy": 0.75,
    "per_class": {"mel": {"support": 10, "recall": 0.6}, "nv": {"support": 10, "recall": 0.9}},
    "macro_avg": {"auc": 0.8, "precision": 0.77, "f1": 0.74}, "weighted_avg": {"auc": 0.8, "precision": 0.77},
    "confidence_intervals": {"confidence": 0.95, "method": "stratified bootstrap, percentile", "n_resamples": 100,
                             "seed": 0, "intervals": {"accuracy": {"low": 0.55, "high": 0.9}}},
    "subgroups": {"available": True, "small_n": 30, "notes": [], "groups": {"sex": {"column": "sex", "rows": [
        {"group": "female", "n": 12, "accuracy": 0.75, "balanced_accuracy": 0.7, "small": True},
        {"group": "male", "n": 8, "accuracy": 0.75, "balanced_accuracy": 0.8, "small": True}]}}},
}  # fmt: skip


@pytest.fixture(scope="module")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-class model whose card has the training data facts training writes (metadata.data)."""
    torch.manual_seed(0)
    model = create_model("resnet10t", num_classes=2, class_names=["mel", "nv"], img_size=32)
    return save_model(model, tmp_path_factory.mktemp("carded-model"), metadata={"data": DATA_FACTS})


def test_every_version_stores_its_card_built_from_the_model_and_its_metrics(registry: Registry, trained_model_dir: Path,
                                                                            tmp_path: Path) -> None:  # fmt: skip
    version = registry.register(trained_model_dir, EVALUATED, run_id="run-1")
    assert {CARD_MARKDOWN, CARD_JSON} <= set(version.files)
    out = registry.download(version.version, tmp_path / "download")
    card = json.loads((out / CARD_JSON).read_text())
    expected = build_card(read_card(trained_model_dir), EVALUATED, weights_sha256=version.files["model.safetensors"].sha256)
    assert card == expected
    markdown = (out / CARD_MARKDOWN).read_text()
    assert markdown == render_markdown(expected) == registry.model_card("latest")
    assert "| sex | female | 12 | 0.750 | 0.700 | n < 30: unreliable |" in markdown
    assert "- Licence: CC BY-NC 4.0" in markdown and "| accuracy | 0.750 | 0.550 – 0.900 |" in markdown


def test_a_model_registered_without_evaluation_gets_a_not_evaluated_card(registry: Registry, model_dir: Path) -> None:
    version = registry.register(model_dir, {"accuracy": 0.5})
    markdown = registry.model_card(version)
    assert "**Not evaluated: no evaluation metrics" in markdown and "None available: not evaluated." in markdown
    assert "Licence: not recorded, check the source" in markdown


def test_a_version_registered_before_cards_gets_one_built_from_its_stored_files(tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "reg")
    current = registry.register(trained_model_dir, EVALUATED)
    # A record as written before this change: the same files without the card.
    old = current.to_dict() | {"number": 2, "version": "v2",
                               "files": {k: v for k, v in current.to_dict()["files"].items() if k not in (CARD_MARKDOWN, CARD_JSON)}}  # fmt: skip
    assert registry.store.put_if_absent("versions/000002.json", encode(old))
    assert registry.model_card("v2") == registry.model_card("v1")


def test_cli_show_card_prints_the_stored_markdown(tmp_path: Path, trained_model_dir: Path) -> None:
    registry = Registry(tmp_path / "reg")
    registry.register(trained_model_dir, EVALUATED)
    shown = subprocess.run([PYTHON, "-m", "skinattn", "registry", "show", "v1", "--card", "--root", str(tmp_path / "reg")],
                           env=cli_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == registry.model_card("v1") + "\n"
    as_json = subprocess.run([PYTHON, "-m", "skinattn", "registry", "show", "v1", "--root", str(tmp_path / "reg")],
                             env=cli_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert CARD_MARKDOWN in json.loads(as_json.stdout)["files"]  # the record points to the stored card
