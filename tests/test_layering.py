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


def test_every_skinattn_package_is_installed_and_the_wrappers_under_unique_names():
    """pyproject lists its packages explicitly (the KFP wrappers are mapped from components/ and pipelines/ to
    skinattn_components / skinattn_pipelines, names no other distribution uses): a new skinattn subpackage
    missing from the list would be absent from the wheel the images install."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    settings = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "skinattn").rglob("__init__.py")}
    listed = set(settings["packages"])
    assert on_disk - listed == set(), "skinattn subpackages missing from pyproject's packages"
    assert {name.split(".")[0] for name in listed} == {"skinattn", "skinattn_components", "skinattn_pipelines"}
    assert settings["package-dir"] == {"skinattn_components": "components", "skinattn_pipelines": "pipelines"}


def test_no_code_imports_the_wrappers_by_their_folder_names():
    """``import components`` / ``import pipelines`` would work from the checkout only, and load a second copy
    of the modules beside the installed skinattn_components / skinattn_pipelines."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("skinattn", "components", "pipelines", "serving", "infra", "tests", "benchmarks"):
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                    [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
                if any(name.split(".")[0] in {"components", "pipelines"} for name in names):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


# The packages that only the wrappers around the core library may import: the KFP SDK, BentoML, the BentoML
# service (serving/) and the installed KFP wrappers themselves.
WRAPPER_PACKAGES = frozenset({"kfp", "bentoml", "serving", "skinattn_pipelines", "skinattn_components"})
# skinattn/cli/pipeline.py is the `skinattn pipeline` command (compile, run --local, submit, upload, schedule):
# its whole job is to drive the pipelines package and the KFP client, which it imports inside its handlers so
# that every other command (and `skinattn --help`) starts without them. Nothing else in skinattn may.
LAZY_WRAPPER_IMPORTS_ALLOWED = frozenset({"skinattn/cli/pipeline.py"})


def _imported_packages(tree) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in a module, at any depth (inside functions too),
    and of every ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    import ast

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def test_no_module_of_the_core_library_imports_the_wrappers_even_lazily():
    """The import test above sees module-level imports only; this one reads the source, so that an import of
    kfp, bentoml or a wrapper package hidden inside a function (the way the demo and the BentoML exporters
    used to live in skinattn) is found too (issue 11: skinattn stays a library)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "skinattn").rglob("*.py"))
    assert len(paths) > 20, "read too few modules: the test would prove nothing"
    assert all((root / allowed).is_file() for allowed in LAZY_WRAPPER_IMPORTS_ALLOWED), "stale allow-list entry"
    offenders = [
        f"{path.relative_to(root)}:{line} imports {package}"
        for path in paths
        if path.relative_to(root).as_posix() not in LAZY_WRAPPER_IMPORTS_ALLOWED
        for line, package in _imported_packages(ast.parse(path.read_text(encoding="utf-8")))
        if package in WRAPPER_PACKAGES
    ]
    assert offenders == []
