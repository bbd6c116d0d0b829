"""A scoring run killed with SIGKILL mid-run resumes, and every image appears exactly once."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from _scoring_fixtures import PYTHON, REPO, cli_env, make_archive

from skinattn.constants import HAM10000_CLASSES
from skinattn.scoring import OutputPaths
from skinattn.scoring.tables import read_table

PROBS = [f"prob_{c}" for c in HAM10000_CLASSES]
IMAGES, CHUNK = 120, 6


def _command(source: Path, out: Path, model_dir: Path) -> list[str]:
    return [PYTHON, "-m", "skinattn", "score", str(source), "--out", str(out), "--model", str(model_dir),
            "--workers", "0", "--batch-size", "3", "--chunk-size", str(CHUNK), "--bootstrap", "0", "--quiet"]


def _committed(work: Path) -> list[Path]:
    return sorted(work.glob("part-*[0-9].csv")) if work.is_dir() else []


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_scores_each_image_exactly_once(model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "download"
    # Large JPEGs make each chunk take long enough to kill the run between two commits.
    labels = make_archive(folder, IMAGES, size=640)
    out = tmp_path / "predictions.csv"
    work = OutputPaths.for_out(out).work

    process = subprocess.Popen(_command(folder, out, model_dir), env=cli_env(), cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_committed(work)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    committed_at_kill = len(_committed(work))
    total_chunks = -(-IMAGES // CHUNK)
    assert process.returncode == -signal.SIGKILL
    assert 2 <= committed_at_kill < total_chunks, "the run was not killed between two commits"
    assert not out.exists()

    resumed = subprocess.run(_command(folder, out, model_dir), env=cli_env(), cwd=REPO, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    match = re.search(r"resuming: (\d+) of (\d+) chunk", resumed.stderr)
    assert match and int(match.group(1)) >= committed_at_kill and int(match.group(2)) == total_chunks

    table = read_table(out)
    assert table["image_id"].is_unique
    assert sorted(table["image_id"]) == sorted(labels)
    assert read_table(OutputPaths.for_out(out).errors).empty
    # The resumed output equals the same command run without interruption, row for row.
    reference = tmp_path / "reference.csv"
    subprocess.run(_command(folder, reference, model_dir), env=cli_env(), cwd=REPO, check=True, capture_output=True,
                   timeout=300)
    expected = read_table(reference)
    assert list(table["image_id"]) == list(expected["image_id"])
    np.testing.assert_allclose(table[PROBS].to_numpy(), expected[PROBS].to_numpy(), atol=1e-6)
