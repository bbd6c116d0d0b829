"""Fixtures for the infra tests: the conformance module and a clean environment for the env-file defaults."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"

# components/ is a top-level folder beside the installed package, importable from a checkout.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def conformance():
    """``infra/conformance.py`` as a module (infra/ is not a package: the script runs from the tool venv)."""
    spec = importlib.util.spec_from_file_location("infra_conformance", INFRA / "conformance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
