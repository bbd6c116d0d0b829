"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Never let a test reach BentoML's usage tracking (no internet here) or the user's ~/bentoml.
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared real HAM10000 images (``$SKINATTN_REAL_DATA``); skip when they are not available."""
    value = os.environ.get("SKINATTN_REAL_DATA")
    if not value:
        pytest.skip("SKINATTN_REAL_DATA is unset: the real HAM10000 images are not available here")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"SKINATTN_REAL_DATA={value} is not a folder")
    return path
