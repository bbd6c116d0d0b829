"""Settings the service reads from its environment at import, checked in a fresh interpreter (the module reads
them once): what BentoML is told and what each API worker gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json
import serving.service as s
print(json.dumps({
    "api_workers": s.SkinattnClassifier.config.get("workers"),
    "model_workers": s.SkinattnModel.config.get("workers"),
    "worker_budget": s.WORKER_DECODE_BUDGET_PIXELS,
    "max_pixels": s.MAX_PIXELS,
}))
"""


def _settings(tmp_path: Path, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SKINATTN_")}
    environ.update(env, BENTOML_HOME=str(tmp_path / "bentoml"), BENTOML_DO_NOT_TRACK="True")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=environ, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_api_workers_split_the_decode_budget_so_decoding_memory_stays_bounded(tmp_path):
    one = _settings(tmp_path, SKINATTN_MAX_PIXELS="1000000", SKINATTN_DECODE_BUDGET_PIXELS="4000000")
    assert (one["api_workers"], one["model_workers"], one["worker_budget"]) == (1, 1, 4_000_000)
    two = _settings(tmp_path, SKINATTN_API_WORKERS="2", SKINATTN_MAX_PIXELS="1000000",
                    SKINATTN_DECODE_BUDGET_PIXELS="4000000")  # fmt: skip
    # Two API processes, one model process (the weights are loaded once); half the budget each.
    assert (two["api_workers"], two["model_workers"], two["worker_budget"]) == (2, 1, 2_000_000)
    # Never less than one image of the largest allowed size per worker, or that image could never be decoded.
    many = _settings(tmp_path, SKINATTN_API_WORKERS="8", SKINATTN_MAX_PIXELS="1000000",
                     SKINATTN_DECODE_BUDGET_PIXELS="4000000")  # fmt: skip
    assert many["worker_budget"] == 1_000_000
