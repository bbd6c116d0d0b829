"""The wheelhouse: every Python package an image needs, resolved once on the host, installed in the image
with ``pip install --no-index`` (infra/docker/Dockerfile*, build context ``wheelhouse``).

Why: a build that resolves on the host is reproducible (``requirements.txt`` pins every wheel it holds), fast
(host caches, no network in the build) and works where the build sandbox cannot reach the package index
(corporate proxies, offline CI). The host interpreter must have the image's Python ``major.minor`` and
platform, since wheels are chosen for it; ``images.py`` checks that and falls back to an index build.

The folder is rebuilt into a temporary sibling and swapped in whole, so it never holds wheels from two
resolutions. ``python -m infra.containers.wheelhouse --help`` for the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = "requirements.txt"
# name-version(-build)?-python-abi-platform.whl (PEP 427)
_WHEEL_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def project_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The project's runtime dependencies plus its build backend (the image builds the project itself)."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    return [*data["project"]["dependencies"], *data["build-system"]["requires"]]


def pins(folder: Path) -> list[str]:
    """``name==version`` for every wheel in ``folder``, sorted by name."""
    found = []
    for wheel in sorted(folder.glob("*.whl")):
        match = _WHEEL_NAME.match(wheel.name)
        if match is None:
            raise ValueError(f"{wheel}: not a wheel file name (name-version-tags.whl)")
        found.append(f"{match['name'].replace('_', '-').lower()}=={match['version']}")
    return sorted(found)


def index_options(index_url: str | None, extra_index_urls: list[str]) -> list[str]:
    options = ["--index-url", index_url] if index_url else []
    for url in extra_index_urls:
        options += ["--extra-index-url", url]
    return options


def write_requirements_only(out: Path, requirements: list[str]) -> Path:
    """A wheelhouse without wheels: the build then installs ``requirements`` from the package index."""
    out.mkdir(parents=True, exist_ok=True)
    for wheel in out.glob("*.whl"):
        wheel.unlink()
    (out / REQUIREMENTS).write_text("\n".join(requirements) + "\n", encoding="utf-8")
    return out


def build_wheelhouse(out: Path, *, requirements: list[str] | None = None, index_url: str | None = None,
                     extra_index_urls: list[str] = (), python: str = sys.executable) -> Path:  # fmt: skip
    """Resolve ``requirements`` (default: the project's) with ``pip wheel`` into ``out``, pinned in
    ``out/requirements.txt``. Packages published only as source are built into wheels here."""
    requirements = requirements if requirements is not None else project_requirements()
    out = out.resolve()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    listed = staging / "requested.txt"
    listed.write_text("\n".join(requirements) + "\n", encoding="utf-8")
    command = [python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(staging), "-r", str(listed),
               *index_options(index_url, list(extra_index_urls))]  # fmt: skip
    print(f"wheelhouse: resolving {len(requirements)} requirement(s) into {out}", flush=True)
    if subprocess.run(command, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")).returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"wheelhouse: '{' '.join(command)}' failed (see pip's message above)")
    listed.unlink()
    pinned = pins(staging)
    (staging / REQUIREMENTS).write_text("\n".join(pinned) + "\n", encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    size = sum(p.stat().st_size for p in out.glob("*.whl"))
    print(f"wheelhouse: {len(pinned)} wheels, {size / 1e9:.2f} GB in {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.containers.wheelhouse",
        description="Resolve the project's dependencies (pyproject.toml) into a wheelhouse for the image "
        "builds: one wheel per package and requirements.txt pinning them. Uses this interpreter's pip "
        "and its configuration (indexes, certificates), so run it with the image's Python version.",
    )
    parser.add_argument("--out", type=Path, required=True, help="the wheelhouse folder (replaced whole)")
    parser.add_argument("--index-url", help="package index (default: pip's configuration)")
    parser.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                        help="another index, e.g. https://download.pytorch.org/whl/cpu for CPU-only torch")  # fmt: skip
    args = parser.parse_args(argv)
    build_wheelhouse(args.out, index_url=args.index_url, extra_index_urls=args.extra_index_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
