"""The model commands, run as a user runs them: the installed ``skinattn`` console script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SKINATTN = shutil.which("skinattn") or str(Path(__file__).parents[2] / ".venv" / "bin" / "skinattn")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([SKINATTN, *args], capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"skinattn {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def test_help_lists_the_subcommands():
    out = run("--help").stdout
    commands = {line.split()[0] for line in out.splitlines() if line.startswith("    ") and line[4:5].isalpha()}
    assert {"models", "predict", "registry", "pipeline"} <= commands
    # The demo drives kfp and serving needs BentoML: `python -m skinattn_pipelines.demo` and `python -m serving`
    # (issue 11: the core package stays a library).
    assert not commands & {"demo", "serve"}


def test_models_list_json_matches_the_registry():
    from skinattn.models import list_archs

    rows = json.loads(run("models", "list", "--json").stdout)
    assert [r["arch"] for r in rows] == list_archs()
    assert {r["arch"]: r["sa_input"] for r in rows}["resnet34"] == "28x28x128"


def test_init_show_predict_with_overlays(tmp_path):
    model_dir = tmp_path / "model"
    run("models", "init", "resnet10t", "--out", str(model_dir), "--img-size", "32", "--class-names", "a,b,c")
    card = json.loads(run("models", "show", str(model_dir)).stdout)
    assert card["config"]["class_names"] == ["a", "b", "c"] and card["stored_tensor_elements"] > 1000

    rng = np.random.default_rng(0)
    images = []
    for i in range(2):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    out = run("predict", "--model", str(model_dir), *images, "--json", "--overlay-dir", str(tmp_path / "ov")).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert sum(row[c] for c in "abc") == pytest.approx(1.0, abs=1e-3)
        assert row["top_class"] == max("abc", key=lambda c: row[c])
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["img0_attention.png", "img1_attention.png"]


def test_errors_are_one_clear_line(tmp_path):
    result = run("models", "init", "resnet9000", "--out", str(tmp_path / "m"), check=False)
    assert result.returncode == 2
    assert "unknown architecture 'resnet9000'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run("predict", "--model", str(tmp_path), str(tmp_path / "x.jpg"), check=False)
    assert result.returncode == 2 and "no model card" in result.stderr and "Traceback" not in result.stderr

