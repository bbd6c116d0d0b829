"""``python -m serving export``: a registry version or a model folder into a temporary BentoML store, run as a
user runs it (a subprocess from the repository root, so that BentoML's home is the test's own)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from _serving_helpers import REPO, serving_env

from skinattn.models import create_model, save_model
from skinattn.registry import Registry


def serving(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)  # fmt: skip


def tiny_model(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_model(create_model("resnet10t", img_size=32), folder)


def bentoml_model(tag: str, env: dict[str, str]) -> dict:
    """The files, labels and metadata of ``tag`` as BentoML itself reads them from the store."""
    probe = (
        "import bentoml, json, os, sys\n"
        "m = bentoml.models.get(sys.argv[1])\n"
        "print(json.dumps({'files': sorted(os.listdir(m.path)), 'labels': m.info.labels, 'metadata': m.info.metadata}))\n"
    )
    shown = subprocess.run([sys.executable, "-c", probe, tag], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_export_of_a_registry_version(tmp_path: Path) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=0)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.8, "auc": {"weighted": 0.9}, "ece": float("nan")}), encoding="utf-8")
    root = tmp_path / "reg"
    registry = Registry(root)
    version = registry.register(model_dir, metrics, run_id="run-x")
    registry.promote(version.version, "accuracy")
    env = serving_env(tmp_path / "bentoml", SKINATTN_REGISTRY=str(root))

    exported = serving("export", env=env)  # --model production and the root from the environment by default
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip() == "skinattn:v1"
    again = serving("export", "--model", "v1", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "skinattn:v1"  # idempotent

    info = bentoml_model("skinattn:v1", env)
    assert {"model.safetensors", "model.json", "metrics.json", "MODEL_CARD.md", "model_card.json"} <= set(info["files"])
    # The card registered with the version, byte for byte: what GET /model-card serves.
    stored = tmp_path / "bentoml" / "models" / "skinattn" / "v1" / "MODEL_CARD.md"
    assert stored.read_text() == registry.model_card("v1")
    assert info["labels"] == {"registry_version": "v1", "arch": "resnet10t", "soft_attention": "true"}
    meta = info["metadata"]
    assert meta["version"] == "v1" and meta["run_id"] == "run-x" and meta["registry"] == str(root)
    assert meta["metrics"] == {"accuracy": 0.8, "auc.weighted": 0.9} and meta["non_finite_metrics"] == ["ece"]
    assert meta["input_size"] == 32
    assert meta["class_names"] == version.class_names
    assert meta["weights_sha256"] == version.files["model.safetensors"].sha256
    assert (tmp_path / "bentoml" / "models" / "skinattn" / "v1" / "model.safetensors").read_bytes() == (
        model_dir / "model.safetensors"
    ).read_bytes()

    # Another registry's v1 with other weights must not silently take or replace that tag.
    other_root = tmp_path / "other-reg"
    Registry(other_root).register(tiny_model(tmp_path / "other-model", seed=1), {"accuracy": 0.5})
    clash = serving("export", "--model", "v1", "--root", str(other_root), env=env)
    assert clash.returncode == 2 and "already exists with different weights" in clash.stderr
    assert clash.stderr.startswith("python -m serving export: error: ") and "Traceback" not in clash.stderr
    renamed = serving("export", "--model", "v1", "--root", str(other_root), "--name", "skinattn-other", env=env)
    assert renamed.returncode == 0 and renamed.stdout.strip() == "skinattn-other:v1"


def test_export_of_a_model_folder_and_mistakes(tmp_path: Path) -> None:
    """A folder goes through the same export (tag from its weights' digest); mistakes are one line, exit 2."""
    model_dir = tiny_model(tmp_path / "model", seed=0)
    env = serving_env(tmp_path / "bentoml")
    exported = serving("export", "--model", str(model_dir), env=env)
    assert exported.returncode == 0, exported.stderr
    tag = exported.stdout.strip()
    assert tag.startswith("skinattn:local-") and len(tag.split("local-")[1]) == 16
    info = bentoml_model(tag, env)
    assert sorted(name for name in info["files"] if name != "model.yaml") == [
        "MODEL_CARD.md", "model.json", "model.safetensors", "model_card.json"]  # the card, built at export
    assert info["labels"]["source"] == "folder" and info["metadata"]["source"] == str(model_dir)
    card = json.loads((tmp_path / "bentoml" / "models" / "skinattn" / tag.split(":")[1] / "model_card.json").read_text())
    assert card["evaluation"]["evaluated"] is False
    assert card["model_details"]["weights_sha256"] == info["metadata"]["weights_sha256"]

    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    mistakes = {
        "no model card here": ["--model", str(not_a_model)],
        "no registry here, the folder does not exist": ["--root", str(tmp_path / "no-such-registry")],
        "no version v9": ["--model", "v9", "--root", str(not_a_model)],
        "not a valid BentoML model name": ["--model", str(model_dir), "--name", "Bad Name"],
    }
    for message, args in mistakes.items():
        result = serving("export", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
