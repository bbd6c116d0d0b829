"""``make demo``, i.e. ``python -m skinattn_pipelines.demo``: run as a user runs it, from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def demo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "skinattn_pipelines.demo", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def test_help_says_what_it_does_and_a_bad_number_is_a_usage_error():
    shown = demo("--help")
    assert shown.returncode == 0, shown.stderr
    assert "kfp.local" in shown.stdout and "demo_summary.json" in shown.stdout and "--per-class" in shown.stdout
    bad = demo("--epochs", "0")
    assert bad.returncode == 2 and "argument --epochs: must be at least 1, got 0" in bad.stderr


def test_the_makefile_runs_this_module():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-m skinattn_pipelines.demo --out $(DEMO_DIR)" in makefile


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    """The training pipeline on kfp.local registers and promotes the first model; the summary says where."""
    result = demo("--out", str(tmp_path), "--per-class", "20", "--size", "32", "--epochs", "1", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "demo_summary.json").read_text())
    assert summary["gate"] == "promote"
    assert summary["versions"] == ["v1"] and summary["production"] == "v1"
    assert "<html" in Path(summary["report"]).read_text().lower()
    table = Path(summary["table"]).read_text()
    assert table.startswith("balanced accuracy **") and "\n| Dis. |" in table  # headline, then the paper table
    assert (Path(summary["model"]) / "model.safetensors").is_file()
    assert (tmp_path / "registry" / "production").is_dir()
    assert f"summary: {tmp_path / 'demo_summary.json'}" in result.stdout
