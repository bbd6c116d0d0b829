"""The core library imports neither kfp nor bentoml: components/, pipelines/ and serving/ wrap it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import skinattn
# __main__ would run the CLI.
names = [m.name for m in pkgutil.walk_packages(skinattn.__path__, "skinattn.") if m.name != "skinattn.__main__"]
for name in names:
    importlib.import_module(name)
leaked = sorted({m.split(".")[0] for m in sys.modules} & {"kfp", "bentoml"})
print(len(names), ",".join(leaked))
"""


def test_no_module_of_the_core_library_imports_kfp_or_bentoml():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    count, _, leaked = result.stdout.strip().partition(" ")
    assert int(count) > 20, "walked too few modules: the test would prove nothing"
    assert leaked == "", f"skinattn imports {leaked} at module level"


def _module_imports(path) -> set[str]:
    """The skinattn modules a source file imports at module level (not inside functions)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skinattn"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("skinattn"))
    return names


def test_models_have_no_import_cycle():
    """The architectures import the registry and the shared parts, never the factory that builds them
    (issue 11: archs.py and factory.py used to import each other), and no module of skinattn.models is in a
    module-level import cycle with another."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "skinattn" / "models"
    graph = {f"skinattn.models.{p.stem}": _module_imports(p) for p in folder.glob("*.py") if p.stem != "__init__"}
    assert "skinattn.models.factory" not in graph["skinattn.models.archs"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, {name}))
    assert cycles == [], f"modules in an import cycle: {cycles}"
