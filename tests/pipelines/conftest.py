"""Fixtures for the pipeline tests: the repository root on sys.path and a clean infra environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# components/ and pipelines/ are top-level packages of the checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def clean_env(monkeypatch):
    """No SKINATTN_* override from the caller's shell changes the compiled images or cluster settings."""
    from components.envfile import INFRA_DIR, read_env_file

    for name in ("image.env", "cluster.env"):
        for key in read_env_file(INFRA_DIR / name):
            monkeypatch.delenv(key, raising=False)
    return monkeypatch
