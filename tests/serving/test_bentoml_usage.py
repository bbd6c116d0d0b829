"""The service uses BentoML through its public API only, on a BentoML release range it was tested with
(issue 13, item 1). Static checks, fast."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
SERVING = sorted((REPO / "serving").glob("*.py"))
# Names of BentoML internals the service once relied on; none may come back, in code or in strings.
FORBIDDEN_NAMES = ("_session_manager", "_bentoml_impl", "_bentoml_sdk", "bentoml._internal", "SessionManager")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Where ``source`` reaches for something private: an import of a private module, an attribute with a
    leading underscore on anything but ``self``/``cls`` (our own objects), or such a name given to
    getattr/setattr/hasattr/delattr as a string."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: import {a.name}" for a in node.names if any(map(_is_private, a.name.split(".")))]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if any(map(_is_private, node.module.split("."))):
                problems.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                problems.append(f"{where}: .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
                name = node.args[1]
                if isinstance(name, ast.Constant) and isinstance(name.value, str) and _is_private(name.value):
                    problems.append(f"{where}: {node.func.id}(..., {name.value!r})")
    return problems


def test_the_checker_catches_the_old_workaround():
    old = (
        "client = self.to_async\n"
        "sessions = getattr(client, '_session_manager', None)\n"
        "client._session_manager.max_requests = 1\n"
        "from bentoml._internal.context import server_context\n"
        "import _bentoml_impl.client\n"
    )
    assert len(private_uses(old)) == 4
    assert private_uses("self._model = None\ncls._x = 1\n") == []


@pytest.mark.parametrize("path", SERVING, ids=lambda p: p.name)
def test_serving_uses_no_private_bentoml_api(path):
    source = path.read_text()
    assert private_uses(source, path.name) == []
    assert [name for name in FORBIDDEN_NAMES if name in source] == []


def test_the_installed_bentoml_is_inside_the_pinned_range():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    (requirement,) = [Requirement(d) for d in project["dependencies"] if Requirement(d).name == "bentoml"]
    installed = importlib.metadata.version("bentoml")
    assert requirement.specifier.contains(installed), f"bentoml {installed} is outside {requirement.specifier}"
    # A range with an upper bound: a BentoML release the service was not tested with is never picked up.
    assert any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier), requirement
