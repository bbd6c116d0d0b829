"""The pipeline tests import components/ and pipelines/ from the checkout (clean_env is in tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# components/ and pipelines/ are top-level packages of the checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
