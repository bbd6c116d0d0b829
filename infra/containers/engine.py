"""The container engine that ``make images`` and ``make e2e`` drive: Docker or Podman, whichever is present.

``CONTAINER_ENGINE=docker|podman`` chooses; otherwise a Docker engine that answers ``docker info`` wins, then
an installed Podman. Where neither is there and installing is allowed (``make e2e``), Podman is installed
from the distribution's packages with ``apt-get`` (nothing else on the system is edited). Podman is always
run with the project-local configuration ``infra/containers/containers.conf`` (through ``CONTAINERS_CONF``).

Both engines take the same build options (``--build-arg``, ``--build-context``, ``--secret``), so one
``build()`` serves both. ``docker_api()`` gives a Docker-compatible API socket for the Docker SDK (and so
``kfp.local.DockerRunner``): Docker's own, or ``podman system service`` started for the duration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CONTAINERS_CONF = Path(__file__).resolve().with_name("containers.conf")
# Debian/Ubuntu packages for a rootful Podman that runs here: runc (see containers.conf), and mmdebstrap
# for stand-in base images (infra/containers/bases.py).
PODMAN_PACKAGES = ("podman", "runc", "mmdebstrap", "uidmap")
ENGINES = ("docker", "podman")


class EngineError(RuntimeError):
    """No usable container engine, or an engine command failed; the message says which and why."""


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"

    @property
    def env(self) -> dict[str, str]:
        """The environment every engine command runs with."""
        env = dict(os.environ)
        if self.name == "podman":
            env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
        return env

    def run(self, *args: str, capture: bool = False, timeout: float | None = None,
            check: bool = True) -> subprocess.CompletedProcess:  # fmt: skip
        """``<engine> args...``; raises EngineError naming the command when it fails and ``check`` is set."""
        command = [self.name, *args]
        try:
            result = subprocess.run(command, env=self.env, text=True, timeout=timeout,
                                    capture_output=capture)  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"'{' '.join(command)}' did not finish within {timeout:.0f} s") from exc
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip()[-2000:] if capture else "see the output above"
            raise EngineError(f"'{' '.join(command)}' exited with {result.returncode}: {detail}")
        return result

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "inspect", ref, capture=True, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        """Size in bytes of the image as stored (all layers, uncompressed)."""
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref, capture=True).stdout.strip())

    def storage_root(self) -> Path:
        """Where the engine keeps images and layers."""
        template = "{{.Store.GraphRoot}}" if self.name == "podman" else "{{.DockerRootDir}}"
        return Path(self.run("info", "--format", template, capture=True).stdout.strip())

    def try_pull(self, ref: str, timeout: float = 120) -> bool:
        """Pull ``ref``; False (not an error) when the registry cannot be reached or refuses."""
        try:
            return self.run("pull", "--quiet", ref, capture=True, check=False, timeout=timeout).returncode == 0
        except EngineError:
            return False

    def build(self, *, dockerfile: Path, tag: str, context: Path, build_args: dict[str, str] | None = None,
              build_contexts: dict[str, Path] | None = None, secrets: dict[str, Path] | None = None) -> None:  # fmt: skip
        """Build ``dockerfile`` into ``tag``. ``secrets`` are files mounted only while a RUN step uses them
        (``--secret``), so they never end up in a layer."""
        args = ["build", "--file", str(dockerfile), "--tag", tag]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        for name, path in (build_contexts or {}).items():
            args += ["--build-context", f"{name}={path}"]
        for name, path in (secrets or {}).items():
            args += ["--secret", f"id={name},src={path}"]
        replaced = self.image_id(tag)
        self.run(*args, str(context))
        if replaced is not None and replaced != self.image_id(tag):
            self.remove_untagged(replaced)

    def image_id(self, ref: str) -> str | None:
        """The ID of the image ``ref`` names, None when there is none."""
        result = self.run("image", "inspect", "--format", "{{.Id}}", ref, capture=True, check=False)
        return result.stdout.strip() or None if result.returncode == 0 else None

    def remove_untagged(self, image_id: str) -> bool:
        """Remove the image a rebuild replaced, when no tag names it any more: each rebuild would otherwise
        leave one more untagged image (and its ~7 GB dependency layer when the dependencies changed) behind.
        An image still tagged or used by a container is kept."""
        tags = self.run("image", "inspect", "--format", "{{len .RepoTags}}", image_id, capture=True, check=False)
        if tags.returncode != 0 or tags.stdout.strip() != "0":
            return False
        return self.run("rmi", image_id, capture=True, check=False).returncode == 0


def _docker_daemon_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def install_podman() -> None:
    """Install Podman (and runc, mmdebstrap) with apt-get; the only change made to the system."""
    if shutil.which("apt-get") is None:
        raise EngineError("no Docker engine or Podman found, and no apt-get to install Podman with: install "
                          "Docker or Podman, or set CONTAINER_ENGINE")  # fmt: skip
    print(f"no container engine found: installing {' '.join(PODMAN_PACKAGES)} with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PODMAN_PACKAGES]):
        if subprocess.run(command, env=env).returncode != 0:
            raise EngineError(f"'{' '.join(command)}' failed: cannot install Podman")


def find_engine(requested: str | None = None, install: bool = False) -> Engine:
    """The engine to use: ``requested`` or $CONTAINER_ENGINE if set, else Docker if its daemon answers,
    else Podman (installed first when ``install`` and it is missing)."""
    requested = requested or os.environ.get("CONTAINER_ENGINE") or None
    if requested is not None and requested not in ENGINES:
        raise EngineError(f"CONTAINER_ENGINE={requested!r}: expected one of {', '.join(ENGINES)}")
    if requested == "docker" or (requested is None and _docker_daemon_answers()):
        if not _docker_daemon_answers():
            raise EngineError("CONTAINER_ENGINE=docker, but 'docker info' fails: is the Docker daemon running?")
        return Engine("docker")
    if shutil.which("podman") is None:
        if not install:
            raise EngineError("no Docker engine answers and Podman is not installed (make e2e installs it)")
        install_podman()
    return Engine("podman")


@contextlib.contextmanager
def docker_api(engine: Engine) -> Iterator[str]:
    """A Docker-compatible API endpoint (a ``DOCKER_HOST`` value) for as long as the block runs.

    Docker: its own daemon. Podman: ``podman system service`` on a socket in a temporary folder, stopped on
    exit, so the Docker SDK (and kfp.local.DockerRunner) drive Podman with the project's configuration.
    """
    if engine.name == "docker":
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    with tempfile.TemporaryDirectory(prefix="skinattn-podman-") as folder:
        socket = Path(folder) / "podman.sock"
        service = subprocess.Popen([engine.name, "system", "service", "--time=0", f"unix://{socket}"],
                                   env=engine.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not socket.exists():
                if service.poll() is not None or time.monotonic() > deadline:
                    err = service.stderr.read().decode(errors="replace") if service.poll() is not None else ""
                    raise EngineError(f"podman system service did not open {socket}: {err.strip()[-1000:]}")
                time.sleep(0.2)
            yield f"unix://{socket}"
        finally:
            service.terminate()
            try:
                service.wait(timeout=15)
            except subprocess.TimeoutExpired:
                service.kill()


def default_ulimits() -> list[tuple[str, int, int]]:
    """``(name, soft, hard)`` for each of containers.conf's ``default_ulimits``: containers created through
    the Docker-compatible API must be given them explicitly (the API does not apply the configuration's)."""
    settings = tomllib.loads(CONTAINERS_CONF.read_text(encoding="utf-8"))
    limits = []
    for entry in settings["containers"]["default_ulimits"]:
        name, _, values = entry.partition("=")
        soft, _, hard = values.partition(":")
        limits.append((name, int(soft), int(hard or soft)))
    return limits


def remove_containers(engine: Engine, label: str) -> None:
    """Force-remove every container carrying ``label`` (``key=value``): what a run started, nothing else."""
    ids = engine.run("ps", "--all", "--quiet", "--filter", f"label={label}", capture=True, check=False).stdout.split()
    if ids:
        engine.run("rm", "--force", *ids, capture=True, check=False)
        print(f"removed {len(ids)} container(s) labelled {label}", file=sys.stderr)


def run_in_image(engine: Engine, image: str, command: Sequence[str], timeout: float = 300) -> str:
    """Run ``command`` in a throw-away container of ``image``; returns its standard output."""
    return engine.run("run", "--rm", image, *command, capture=True, timeout=timeout).stdout
