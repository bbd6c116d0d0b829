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
