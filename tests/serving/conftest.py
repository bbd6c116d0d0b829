"""The module-scoped real server fixture; helpers live in _serving_helpers.py."""

from __future__ import annotations

import pytest
from _serving_helpers import running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``python -m serving serve`` of a tiny Soft Attention model, once per test module."""
    with running_server(tmp_path_factory.mktemp("serving")) as running:
        yield running
