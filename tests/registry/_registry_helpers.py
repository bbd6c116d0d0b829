"""Helpers for the registry tests that run ``skinattn`` in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests: the project's .venv under `make test`.
PYTHON = sys.executable


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a ``skinattn`` subprocess: this process's (incl. monkeypatched AWS vars) plus ``extra``."""
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    env.update(extra)
    return env
