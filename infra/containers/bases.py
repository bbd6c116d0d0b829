"""Base images for the builds: the official ones the Dockerfiles pin, or a stand-in built from Debian packages.

The Dockerfiles name their pinned official base in ``ARG BASE_IMAGE=...``. Where that image can be neither
found locally nor pulled (CI here cannot reach public container registries), ``resolve_base`` builds a
stand-in with ``mmdebstrap`` from Debian's packages, which are reachable, and says so: Debian bookworm
(minbase) with Python 3.11, venv, CA certificates and the user tools the Dockerfiles call. The stand-in is
built once and kept in the engine's image store under ``STANDIN_IMAGE``; a changed package list gives it a
new tag, so a kept image never hides a change here.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra.containers.engine import Engine, EngineError

STANDIN_SUITE = "bookworm"
# python-is-python3: the official python images answer to `python`; passwd: groupadd/useradd.
STANDIN_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "passwd")
_KEY = hashlib.sha256(" ".join((STANDIN_SUITE, *STANDIN_PACKAGES)).encode()).hexdigest()[:12]
STANDIN_IMAGE = f"localhost/skinattn-standin/debian-python:{STANDIN_SUITE}-{_KEY}"


@dataclass(frozen=True)
class Base:
    image: str
    standin: bool  # True: built here from Debian packages instead of the official image


def dockerfile_base(dockerfile: Path) -> str:
    """The default of ``ARG BASE_IMAGE=...`` in ``dockerfile``: the pinned official base."""
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile.read_text(encoding="utf-8"), flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{dockerfile}: no 'ARG BASE_IMAGE=<image>' line naming the pinned base image")
    return match.group(1)


def build_standin(engine: Engine) -> str:
    """Build (once) and return the stand-in base image from Debian packages."""
    if engine.image_exists(STANDIN_IMAGE):
        return STANDIN_IMAGE
    if shutil.which("mmdebstrap") is None:
        raise EngineError("mmdebstrap is needed to build a stand-in base image (apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory(prefix="skinattn-standin-") as folder:
        rootfs = Path(folder) / "rootfs.tar"
        command = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(STANDIN_PACKAGES)}",
                   STANDIN_SUITE, str(rootfs)]  # fmt: skip
        print(f"stand-in base: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise EngineError(f"'{' '.join(command)}' failed: cannot build the stand-in base image")
        engine.run("import", "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]', str(rootfs),
                   STANDIN_IMAGE, capture=True)  # fmt: skip
    return STANDIN_IMAGE


def resolve_base(engine: Engine, official: str, *, allow_standin: bool) -> Base:
    """``official`` when it is present or can be pulled; else the stand-in (when allowed), saying so."""
    if engine.image_exists(official) or engine.try_pull(official):
        return Base(official, standin=False)
    if not allow_standin:
        raise EngineError(f"base image {official} is not present and cannot be pulled (pass --standin-bases "
                          "to build a stand-in from Debian packages)")  # fmt: skip
    image = build_standin(engine)
    print(f"NOTE: the official base image {official} cannot be pulled here; using the stand-in {image}, "
          f"built from Debian {STANDIN_SUITE} packages ({', '.join(STANDIN_PACKAGES)})", flush=True)  # fmt: skip
    return Base(image, standin=True)
