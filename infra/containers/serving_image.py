"""The serving image, built and run for real: ``bentoml build`` + ``bentoml containerize``, then the container
started the way ``infra/k8s/base/serving/deployment.yaml`` runs it and checked over HTTP.

Three parts, usable from ``make e2e`` or by hand (``python -m infra.containers.serving_image --help``):

- :func:`build_serving_image` exports a model folder into a private BentoML store, builds the bento from
  ``serving/bentofile.yaml`` and containerizes it with Docker or Podman on top of the CPU component image
  (``serving/Dockerfile.template``: nothing is installed, so the build needs no package index).
- :func:`deployment_run_options` reads the Deployment manifest, the single source of truth, into the
  ``docker/podman run`` options that reproduce it: user and group, read-only root filesystem, a tmpfs for
  each emptyDir, the environment, dropped capabilities, no privilege escalation, resource limits, the
  probes. A field it does not know how to mirror is an error, so the manifest cannot drift away from what
  the end-to-end run tests.
- :func:`check_serving_container` starts the image with those options, waits for the startup probe's path
  (``/readyz``), classifies a real JPEG, checks that a non-image upload is refused with a 4xx and that the
  liveness path and ``/metrics`` answer, and always removes the container.

Standard library, PyYAML and httpx only (all in the project's virtual environment).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script: infra/ and components/ are importable from the root
    sys.path.insert(0, str(REPO_ROOT))

from infra.containers.engine import Engine, EngineError, find_engine, remove_containers  # noqa: E402

BENTOFILE = REPO_ROOT / "serving" / "bentofile.yaml"
DEPLOYMENT_YAML = REPO_ROOT / "infra" / "k8s" / "base" / "serving" / "deployment.yaml"
# The build argument of serving/Dockerfile.template that names the image the serving image starts FROM.
BASE_IMAGE_ARG = "SKINATTN_BASE_IMAGE"
CONTAINER_LABEL_KEY = "skinattn-e2e"
BENTO_NAME = "skinattn"


class ServingImageError(RuntimeError):
    """A step of building or checking the serving image failed; the message names the step."""


class UnsupportedManifest(ServingImageError):
    """The Deployment uses a field that the local run cannot reproduce (so it would test something else)."""


# ---------------------------------------------------------------------------------------------------------
# The Deployment manifest -> run options
# ---------------------------------------------------------------------------------------------------------

# Fields that decide how the container runs, each mirrored below; anything else under these levels is an
# error. Fields listed as "ignored" have no bearing on what runs inside the container (scheduling, the API
# server's bookkeeping, names) and are accepted as they are.
_POD_SPEC_MIRRORED = {"securityContext", "containers", "volumes", "terminationGracePeriodSeconds"}
_POD_SPEC_IGNORED = {
    "serviceAccountName",  # checked: no token is mounted (automountServiceAccountToken below)
    "automountServiceAccountToken",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
}
_POD_SECURITY_KEYS = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
_CONTAINER_MIRRORED = {
    "name", "image", "imagePullPolicy", "command", "args", "ports", "env", "resources", "securityContext",
    "volumeMounts", "startupProbe", "livenessProbe", "readinessProbe",
}  # fmt: skip
_CONTAINER_SECURITY_KEYS = {
    "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot", "runAsUser", "runAsGroup",
    "capabilities", "privileged", "seccompProfile",
}  # fmt: skip
_PROBE_KEYS = {"httpGet", "periodSeconds", "failureThreshold", "timeoutSeconds", "initialDelaySeconds",
               "successThreshold"}  # fmt: skip

_MEMORY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def parse_memory(quantity: str | int, where: str) -> int:
    """A Kubernetes memory quantity (``1Gi``, ``512Mi``, ``4G``, ``1000``) in bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity).strip())
    if not match or match.group(2) not in _MEMORY_UNITS:
        raise UnsupportedManifest(f"{where}: cannot read the quantity {quantity!r} (expected e.g. 512Mi, 1Gi)")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


def parse_cpu(quantity: str | int | float, where: str) -> float:
    """A Kubernetes CPU quantity (``2``, ``500m``, ``1.5``) in cores."""
    text = str(quantity).strip()
    try:
        return int(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        raise UnsupportedManifest(f"{where}: cannot read the CPU quantity {quantity!r}") from None


@dataclass(frozen=True)
class TmpfsMount:
    """An emptyDir volume mounted in the container, reproduced as a tmpfs of the same size limit."""

    path: str
    size_bytes: int | None  # None: no sizeLimit in the manifest

    def option(self) -> str:
        # exec: an emptyDir is not mounted noexec, while Docker and Podman mount --tmpfs noexec by default.
        # mode=1777: writable by the container's user whatever its uid, like an emptyDir.
        options = ["rw", "exec", "nosuid", "nodev", "mode=1777"]
        if self.size_bytes is not None:
            options.append(f"size={self.size_bytes}")
        return f"{self.path}:{','.join(options)}"


@dataclass(frozen=True)
class HttpProbe:
    path: str
    period_s: float
    failure_threshold: int
    timeout_s: float

    @property
    def budget_s(self) -> float:
        """How long Kubernetes waits on this probe before it gives up on the container."""
        return self.period_s * self.failure_threshold


@dataclass(frozen=True)
class RunOptions:
    """How the Deployment's one container runs, in terms ``docker run`` and ``podman run`` understand."""

    user: int
    group: int
    supplementary_groups: tuple[int, ...]  # fsGroup: Kubernetes adds it to the container's processes
    read_only_root: bool
    tmpfs: tuple[TmpfsMount, ...]
    env: tuple[tuple[str, str], ...]
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    seccomp_unconfined: bool
    container_port: int
    cpus: float | None = None
    memory_bytes: int | None = None
    command: tuple[str, ...] = ()  # Kubernetes "command": replaces the image's ENTRYPOINT
    args: tuple[str, ...] = ()  # Kubernetes "args": replaces the image's CMD
    startup_probe: HttpProbe | None = None
    liveness_probe: HttpProbe | None = None
    readiness_probe: HttpProbe | None = None
    grace_period_s: float = 30  # terminationGracePeriodSeconds: SIGTERM, then SIGKILL after this long
    # (variable, Secret, key) of env values from optional Secret keys: not set by the run, as without the Secret.
    optional_secret_env: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)  # what is approximated, for the log

    @property
    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def run_args(self, engine: str = "podman") -> list[str]:
        """The ``<engine> run`` options (before the image name) that reproduce the manifest."""
        args = ["--user", f"{self.user}:{self.group}"]
        for gid in self.supplementary_groups:
            args += ["--group-add", str(gid)]
        if self.read_only_root:
            args.append("--read-only")
            if engine == "podman":
                # Podman's --read-only also mounts writable tmpfs on /tmp, /var/tmp and /run unless told not
                # to; Kubernetes does not, so only the emptyDir mounts below are writable.
                args.append("--read-only-tmpfs=false")
        for mount in self.tmpfs:
            args += ["--tmpfs", mount.option()]
        for name, value in self.env:
            args += ["--env", f"{name}={value}"]
        for cap in self.cap_drop:
            args += ["--cap-drop", cap]
        for cap in self.cap_add:
            args += ["--cap-add", cap]
        if self.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if self.seccomp_unconfined:
            args += ["--security-opt", "seccomp=unconfined"]
        if self.cpus is not None:
            args += ["--cpus", f"{self.cpus:g}"]
        if self.memory_bytes is not None:
            args += ["--memory", f"{self.memory_bytes}b"]
        if self.command:
            args += ["--entrypoint", self.command[0]]
        return args

    def command_args(self) -> list[str]:
        """What follows the image name: the rest of ``command`` and then ``args``."""
        return [*self.command[1:], *self.args]


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise UnsupportedManifest(
            f"{where}: {', '.join(unknown)} cannot be reproduced by the local run "
            f"(infra/containers/serving_image.py knows {', '.join(sorted(allowed))}); teach "
            "deployment_run_options to mirror it, or the end-to-end check would test a different container"
        )


def _probe(container: Mapping[str, Any], key: str, port_names: Mapping[str, int], port: int,
           cwhere: str) -> HttpProbe | None:  # fmt: skip
    spec = container.get(key)
    if spec is None:
        return None
    where = f"{cwhere}.{key}"
    _check_keys(spec, _PROBE_KEYS, where)
    http = spec.get("httpGet")
    if not isinstance(http, Mapping):
        raise UnsupportedManifest(f"{where}: only httpGet probes are mirrored")
    _check_keys(http, {"path", "port", "scheme"}, f"{where}.httpGet")
    if http.get("scheme", "HTTP") != "HTTP":
        raise UnsupportedManifest(f"{where}.httpGet.scheme: only HTTP is mirrored")
    probe_port = http.get("port")
    probe_port = port_names.get(probe_port, probe_port) if isinstance(probe_port, str) else probe_port
    if probe_port != port:
        raise UnsupportedManifest(f"{where}.httpGet.port: {http.get('port')!r} is not the container port {port}")
    return HttpProbe(
        path=str(http.get("path", "/")),
        period_s=float(spec.get("periodSeconds", 10)),
        failure_threshold=int(spec.get("failureThreshold", 3)),
        timeout_s=float(spec.get("timeoutSeconds", 1)),
    )


def _seccomp(profile: Mapping[str, Any] | None, where: str) -> bool | None:
    """True for Unconfined, False for RuntimeDefault (the engines' default profile), None when unset."""
    if profile is None:
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return False
    if kind == "Unconfined":
        return True
    raise UnsupportedManifest(f"{where}.seccompProfile: type {kind!r} cannot be reproduced (only RuntimeDefault)")


def _deployment(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError) as exc:
        raise ServingImageError(f"reading {path}: {exc}") from exc
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    if len(deployments) != 1:
        raise UnsupportedManifest(f"{path}: expected exactly one Deployment, found {len(deployments)}")
    return deployments[0]


def deployment_run_options(deployment_yaml: Path = DEPLOYMENT_YAML) -> RunOptions:
    """Read the Deployment's pod template into :class:`RunOptions`.

    Raises:
        UnsupportedManifest: a security setting, environment source, volume type or other field that the
            local run cannot reproduce faithfully, naming it.
    """
    deployment = _deployment(deployment_yaml)
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    where = f"{deployment_yaml.name}: spec.template.spec"
    _check_keys(pod, _POD_SPEC_MIRRORED | _POD_SPEC_IGNORED, where)
    if pod.get("automountServiceAccountToken", True) is not False:
        raise UnsupportedManifest(f"{where}.automountServiceAccountToken must be false: the local run has no token")
    containers = pod.get("containers") or []
    if len(containers) != 1:
        raise UnsupportedManifest(f"{where}.containers: expected one container, found {len(containers)}")
    container = containers[0]
    cwhere = f"{where}.containers[0]"
    _check_keys(container, _CONTAINER_MIRRORED, cwhere)
    notes: list[str] = []

    pod_security = pod.get("securityContext") or {}
    _check_keys(pod_security, _POD_SECURITY_KEYS, f"{where}.securityContext")
    security = container.get("securityContext") or {}
    _check_keys(security, _CONTAINER_SECURITY_KEYS, f"{cwhere}.securityContext")

    def setting(key: str) -> Any:  # the container's value wins over the pod's, as in Kubernetes
        return security.get(key, pod_security.get(key))

    user, group = setting("runAsUser"), setting("runAsGroup")
    if user is None:
        raise UnsupportedManifest(f"{cwhere}: no runAsUser: the local run needs the numeric user to start as")
    if setting("runAsNonRoot") and int(user) == 0:
        raise UnsupportedManifest(f"{cwhere}: runAsNonRoot is true but runAsUser is 0")
    group = int(group) if group is not None else 0
    supplementary = (int(pod_security["fsGroup"]),) if pod_security.get("fsGroup") is not None else ()
    if setting("privileged"):
        raise UnsupportedManifest(f"{cwhere}.securityContext.privileged: a privileged container is not mirrored")
    seccomp = _seccomp(security.get("seccompProfile"), f"{cwhere}.securityContext")
    if seccomp is None:
        seccomp = _seccomp(pod_security.get("seccompProfile"), f"{where}.securityContext")
    capabilities = security.get("capabilities") or {}
    _check_keys(capabilities, {"drop", "add"}, f"{cwhere}.securityContext.capabilities")

    ports = container.get("ports") or []
    if len(ports) != 1:
        raise UnsupportedManifest(f"{cwhere}.ports: expected one port, found {len(ports)}")
    _check_keys(ports[0], {"name", "containerPort", "protocol"}, f"{cwhere}.ports[0]")
    if ports[0].get("protocol", "TCP") != "TCP":
        raise UnsupportedManifest(f"{cwhere}.ports[0].protocol: only TCP is mirrored")
    port = int(ports[0]["containerPort"])
    port_names = {ports[0]["name"]: port} if ports[0].get("name") else {}

    env: list[tuple[str, str]] = []
    optional_secrets: list[tuple[str, str, str]] = []
    for index, item in enumerate(container.get("env") or []):
        if "valueFrom" in item:
            # Only an optional Secret key is mirrored, by its absence: the pod starts without the Secret too,
            # and that is the run reproduced here. Any other source is a cluster object the run cannot read.
            _check_keys(item, {"name", "valueFrom"}, f"{cwhere}.env[{index}]")
            _check_keys(item["valueFrom"], {"secretKeyRef"}, f"{cwhere}.env[{index}].valueFrom")
            ref = item["valueFrom"]["secretKeyRef"]
            _check_keys(ref, {"name", "key", "optional"}, f"{cwhere}.env[{index}].valueFrom.secretKeyRef")
            if ref.get("optional") is not True:
                raise UnsupportedManifest(f"{cwhere}.env[{index}] ({item['name']}): a required Secret key cannot be "
                                          "reproduced (only optional: true is, by running without it)")  # fmt: skip
            optional_secrets.append((str(item["name"]), str(ref["name"]), str(ref["key"])))
            notes.append(f"env {item['name']} from optional Secret {ref['name']} is left unset (as without the Secret)")
            continue
        _check_keys(item, {"name", "value"}, f"{cwhere}.env[{index}]")
        env.append((str(item["name"]), str(item.get("value", ""))))
    if container.get("envFrom"):
        raise UnsupportedManifest(f"{cwhere}.envFrom cannot be reproduced")

    volumes: dict[str, Mapping[str, Any]] = {}
    for index, volume in enumerate(pod.get("volumes") or []):
        _check_keys(volume, {"name", "emptyDir"}, f"{where}.volumes[{index}] ({volume.get('name')})")
        empty_dir = volume.get("emptyDir") or {}
        _check_keys(empty_dir, {"sizeLimit", "medium"}, f"{where}.volumes[{index}].emptyDir")
        volumes[volume["name"]] = empty_dir
    tmpfs: list[TmpfsMount] = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        _check_keys(mount, {"name", "mountPath"}, f"{cwhere}.volumeMounts[{index}]")  # readOnly, subPath, ...
        if mount["name"] not in volumes:
            raise UnsupportedManifest(f"{cwhere}.volumeMounts[{index}]: no emptyDir volume {mount['name']!r}")
        limit = volumes[mount["name"]].get("sizeLimit")
        size = parse_memory(limit, f"volume {mount['name']} sizeLimit") if limit is not None else None
        tmpfs.append(TmpfsMount(str(mount["mountPath"]), size))
        if volumes[mount["name"]].get("medium") != "Memory":
            notes.append(f"emptyDir {mount['name']} (node disk in Kubernetes) runs as a tmpfs of the same size")

    resources = container.get("resources") or {}
    _check_keys(resources, {"requests", "limits"}, f"{cwhere}.resources")
    limits = resources.get("limits") or {}
    _check_keys(limits, {"cpu", "memory"}, f"{cwhere}.resources.limits")  # nvidia.com/gpu: not here
    _check_keys(resources.get("requests") or {}, {"cpu", "memory"}, f"{cwhere}.resources.requests")
    cpus = parse_cpu(limits["cpu"], f"{cwhere}.resources.limits.cpu") if "cpu" in limits else None
    memory = parse_memory(limits["memory"], f"{cwhere}.resources.limits.memory") if "memory" in limits else None

    return RunOptions(
        user=int(user),
        group=group,
        supplementary_groups=supplementary,
        read_only_root=bool(setting("readOnlyRootFilesystem")),
        tmpfs=tuple(tmpfs),
        env=tuple(env),
        optional_secret_env=tuple(optional_secrets),
        cap_drop=tuple(str(c) for c in capabilities.get("drop") or ()),
        cap_add=tuple(str(c) for c in capabilities.get("add") or ()),
        no_new_privileges=security.get("allowPrivilegeEscalation", True) is False,
        seccomp_unconfined=bool(seccomp),
        container_port=port,
        cpus=cpus,
        memory_bytes=memory,
        command=tuple(str(c) for c in container.get("command") or ()),
        args=tuple(str(a) for a in container.get("args") or ()),
        startup_probe=_probe(container, "startupProbe", port_names, port, cwhere),
        liveness_probe=_probe(container, "livenessProbe", port_names, port, cwhere),
        readiness_probe=_probe(container, "readinessProbe", port_names, port, cwhere),
        grace_period_s=float(pod.get("terminationGracePeriodSeconds", 30)),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------------------------------------


def _say(message: str) -> None:
    print(f"[serving-image] {message}", flush=True)


def _run_step(step: str, command: Sequence[str], *, env: Mapping[str, str], cwd: Path,
              timeout: float) -> subprocess.CompletedProcess:  # fmt: skip
    """Run one build step, echoing it; ServingImageError naming the step (and the output's end) on failure."""
    _say(f"{step}: {' '.join(command)}")
    started = time.monotonic()
    try:
        result = subprocess.run(list(command), env=dict(env), cwd=cwd, text=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ServingImageError(f"{step}: did not finish within {timeout:.0f} s: {' '.join(command)}") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-4000:]
        raise ServingImageError(f"{step}: '{' '.join(command)}' exited with {result.returncode}:\n{output}")
    _say(f"{step}: done in {time.monotonic() - started:.1f} s")
    return result


def _containerize_dir(workdir: Path) -> Path:
    """An empty folder for ``bentoml containerize``'s temporary files (its TMPDIR); it runs in the parent.

    BentoML 1.4.40 copies the bento to a temporary folder and then refuses to read the bento's
    ``Dockerfile.template`` from it unless that folder is inside the current one and no part of its path
    starts with '.' (bentoml/BentoML#5566, open). ``workdir/tmp`` when its path qualifies, else a folder under
    the system's temporary directory.
    """
    for parent in (workdir, None):
        if parent is None:
            import tempfile

            parent = Path(tempfile.mkdtemp(prefix="skinattn-containerize-")).resolve()
        if not any(part.startswith(".") for part in parent.parts):
            scratch = parent / "tmp"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            return scratch
    raise ServingImageError(
        f"bentoml containerize: both {workdir} and the system's temporary folder have a hidden ('.') part in "
        "their path, which BentoML 1.4.40 refuses (bentoml/BentoML#5566); pass another workdir"
    )


def build_serving_image(engine: Engine, *, model_dir: Path, base_image: str, tag: str, workdir: Path,
                        timeout: float = 1800) -> None:  # fmt: skip
    """Build the serving image ``tag`` around the model folder ``model_dir`` (``model.json`` +
    ``model.safetensors``), FROM ``base_image`` (the CPU component image).

    Steps, each echoed with its time: export the folder into a fresh BentoML store under ``workdir``
    (``python -m serving export --model DIR``, tag ``skinattn:local-<sha256>``), ``bentoml build -f
    serving/bentofile.yaml`` from the repository root with that tag as ``SKINATTN_MODEL_TAG``, then
    ``bentoml containerize --backend <engine>`` with ``SKINATTN_BASE_IMAGE=base_image``.

    Raises:
        ServingImageError: naming the step that failed.
    """
    model_dir, workdir = Path(model_dir).resolve(), Path(workdir).resolve()
    if tag == base_image:
        raise ServingImageError(f"tag: the serving image cannot replace its own base image {base_image}")
    if not (model_dir / "model.json").is_file():
        raise ServingImageError(f"model: {model_dir} is not a model folder (no model.json)")
    if not engine.image_exists(base_image):
        _say(f"base image {base_image} is not here: trying to pull it")
        if not engine.try_pull(base_image):
            raise ServingImageError(
                f"base image: {base_image} is neither here nor pullable; build the CPU component image first "
                "(infra/docker/Dockerfile) or pass its tag"
            )
    home = workdir / "bentoml"
    shutil.rmtree(home, ignore_errors=True)
    scratch = _containerize_dir(workdir)
    env = dict(engine.env)
    env.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", TMPDIR=str(scratch))
    env.pop("SKINATTN_MODEL_TAG", None)
    python = sys.executable
    started = time.monotonic()

    _run_step("export model", [python, "-m", "serving", "export", "--model", str(model_dir)],
              env=env, cwd=REPO_ROOT, timeout=300)  # fmt: skip
    listed = _run_step("list models", [python, "-m", "bentoml", "models", "list", "-o", "json"], env=env,
                       cwd=REPO_ROOT, timeout=120)  # fmt: skip
    tags = [m["tag"] for m in json.loads(listed.stdout)]
    if len(tags) != 1:
        raise ServingImageError(f"export model: expected one model in the fresh store {home}, found {tags}")
    model_tag = tags[0]

    env["SKINATTN_MODEL_TAG"] = model_tag
    built = _run_step("bentoml build", [python, "-m", "bentoml", "build", "-f", str(BENTOFILE), "--output", "tag",
                                        str(REPO_ROOT)], env=env, cwd=REPO_ROOT, timeout=600)  # fmt: skip
    match = re.search(r"__tag__:(\S+)", built.stdout)
    if not match:
        raise ServingImageError(f"bentoml build: no bento tag in its output:\n{built.stdout[-2000:]}")
    bento_tag = match.group(1)
    _say(f"bento {bento_tag} holds model {model_tag}")

    if engine.image_exists(tag):  # so that a containerize that fails quietly cannot pass on an old image
        engine.run("image", "rm", "--force", tag, capture=True, check=False)
    containerized = _run_step(
        "bentoml containerize",
        [python, "-m", "bentoml", "containerize", bento_tag, "--backend", engine.name, "--image-tag", tag,
         "--opt", f"build-arg={BASE_IMAGE_ARG}={base_image}"],
        env=env, cwd=scratch.parent, timeout=timeout,
    )  # fmt: skip
    # The image itself is the proof, not BentoML's exit status (its build() only logs some engine failures).
    if not engine.image_exists(tag):
        output = (containerized.stdout + containerized.stderr).strip()[-3000:]
        raise ServingImageError(f"bentoml containerize: exited 0 but image {tag} does not exist:\n{output}")
    for line in _added_layers(engine, tag, base_image):
        _say(f"  layer: {line}")
    _say(f"built {tag} from {base_image} in {time.monotonic() - started:.1f} s "
         f"({engine.image_size(tag) / 1e6:.0f} MB)")  # fmt: skip


def _history(engine: Engine, ref: str) -> list[str]:
    result = engine.run("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref, capture=True, check=False)
    return result.stdout.splitlines() if result.returncode == 0 else []


def _added_layers(engine: Engine, image: str, base_image: str) -> list[str]:
    """The instructions ``image`` adds on top of ``base_image``, oldest first: what containerize produced."""
    added = _history(engine, image)
    added = added[: max(0, len(added) - len(_history(engine, base_image)))]
    return [re.sub(r"^/bin/sh -c #\(nop\) +", "", line).strip()[:160] for line in reversed(added)]


# ---------------------------------------------------------------------------------------------------------
# Run and check
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _state(engine: Engine, name: str) -> str:
    result = engine.run("inspect", "--format", "{{.State.Status}}", name, capture=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "missing"


def _logs(engine: Engine, name: str, tail: int = 80) -> str:
    result = engine.run("logs", "--tail", str(tail), name, capture=True, check=False)
    return (result.stdout + result.stderr).strip() or "(no output)"


def check_serving_container(engine: Engine, image: str, *, jpeg: Path, deployment_yaml: Path = DEPLOYMENT_YAML,
                            port: int | None = None, timeout: float = 300,
                            class_names: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run ``image`` as the Deployment runs it and check it over HTTP; returns what was measured.

    The container is started detached with :func:`deployment_run_options` of ``deployment_yaml`` and a
    label of its own, its port published on 127.0.0.1:``port`` (a free one by default). Checks, in order:
    the startup probe's path answers 200 within ``timeout`` s; ``jpeg`` posted to /classify gets 200 and
    probabilities over ``class_names`` (when given) whose top class is ``top_class``; a text file posted as
    the image gets a 4xx with a JSON ``error``; the liveness path still answers 200; /metrics counts the
    requests; inside the container the root filesystem is read-only and the user is the manifest's. The
    container is always removed.

    Raises:
        ServingImageError: naming the check that failed, with the container's log.
    """
    import httpx

    options = deployment_run_options(deployment_yaml)
    jpeg = Path(jpeg)
    if not jpeg.is_file():
        raise ServingImageError(f"check: no JPEG at {jpeg}")
    ready_path = (options.startup_probe or options.readiness_probe or HttpProbe("/readyz", 5, 60, 3)).path
    live_path = options.liveness_probe.path if options.liveness_probe else "/livez"
    port = port or free_port()
    run_id = uuid.uuid4().hex[:12]
    label = f"{CONTAINER_LABEL_KEY}={run_id}"
    name = f"skinattn-serving-e2e-{run_id}"
    base = f"http://127.0.0.1:{port}"
    facts: dict[str, Any] = {"image": image, "port": port, "container": name}
    for note in options.notes:
        _say(f"note: {note}")

    def fail(step: str, detail: str) -> ServingImageError:
        return ServingImageError(f"serving container, {step}: {detail}\n--- container log ({name}) ---\n"
                                 f"{_logs(engine, name)}")  # fmt: skip

    run_args = [
        "run", "--detach", "--name", name, "--label", label,
        "--publish", f"127.0.0.1:{port}:{options.container_port}",
        *options.run_args(engine.name), image, *options.command_args(),
    ]  # fmt: skip
    facts["run_command"] = f"{engine.name} {' '.join(run_args)}"
    _say(f"start: {facts['run_command']}")
    started = time.monotonic()
    try:
        try:
            engine.run(*run_args, capture=True, timeout=120)
        except EngineError as exc:
            raise ServingImageError(f"serving container, start: {exc}") from exc

        # 1. ready
        saw_503 = False
        with httpx.Client(base_url=base, timeout=10) as client:
            while True:
                state = _state(engine, name)
                if state not in ("running", "created", "configured", "initialized"):
                    raise fail("wait for ready", f"container is {state} before {ready_path} answered 200")
                try:
                    answer = client.get(ready_path)
                    if answer.status_code == 200:
                        break
                    saw_503 = saw_503 or answer.status_code == 503
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() - started > timeout:
                    raise fail("wait for ready", f"{ready_path} did not answer 200 within {timeout:.0f} s")
                time.sleep(0.5)
            facts["seconds_to_ready"] = round(time.monotonic() - started, 1)
            facts["answered_503_before_ready"] = saw_503
            _say(f"ready: {ready_path} 200 after {facts['seconds_to_ready']} s")

            # 2. a real JPEG
            t0 = time.monotonic()
            answer = client.post("/classify", files={"image": (jpeg.name, jpeg.read_bytes(), "image/jpeg")}, timeout=60)
            facts["classify_seconds"] = round(time.monotonic() - t0, 3)
            facts["classify_status"] = answer.status_code
            if answer.status_code != 200:
                raise fail("classify a JPEG", f"{jpeg.name}: HTTP {answer.status_code}: {answer.text[:500]}")
            body = answer.json()
            probabilities = body.get("probabilities") or {}
            top = body.get("top_class")
            if class_names is not None and list(probabilities) != list(class_names):
                raise fail("classify a JPEG", f"classes {list(probabilities)}, expected {list(class_names)}")
            if top not in probabilities or top != max(probabilities, key=probabilities.__getitem__):
                raise fail("classify a JPEG", f"top_class {top!r} is not the most probable class of {probabilities}")
            if abs(sum(probabilities.values()) - 1) > 1e-3:
                raise fail("classify a JPEG", f"probabilities sum to {sum(probabilities.values())}, not 1")
            facts.update(top_class=top, probability=round(probabilities[top], 4), model_version=body.get("version"))
            _say(f"classify {jpeg.name}: 200 {top} ({probabilities[top]:.3f}) in {facts['classify_seconds']} s")

            # 3. a bad upload
            answer = client.post("/classify", files={"image": ("notes.txt", b"not an image\n" * 20, "text/plain")})
            facts["bad_upload_status"] = answer.status_code
            if not 400 <= answer.status_code < 500:
                raise fail("refuse a bad upload", f"a text file as 'image' got HTTP {answer.status_code}: {answer.text[:500]}")
            try:
                facts["bad_upload_error"] = answer.json()["error"]
            except (ValueError, KeyError, TypeError):
                raise fail("refuse a bad upload", f"the {answer.status_code} answer is not {{'error': ...}}: "
                                                  f"{answer.text[:500]}") from None  # fmt: skip
            _say(f"bad upload: {answer.status_code} {facts['bad_upload_error']}")

            # 4. liveness and metrics
            answer = client.get(live_path)
            facts["livez_status"] = answer.status_code
            if answer.status_code != 200:
                raise fail("liveness", f"{live_path} answered {answer.status_code} after the requests")
            answer = client.get("/metrics")
            facts["metrics_status"] = answer.status_code
            counted = [line for line in answer.text.splitlines()
                       if line.startswith("bentoml_service_request_total") and 'endpoint="/classify"' in line]  # fmt: skip
            if answer.status_code != 200 or not counted:
                raise fail("metrics", f"/metrics answered {answer.status_code} without a /classify request count")
            facts["metrics_classify_lines"] = counted

        # 5. what the process may write, seen from inside
        probe = engine.run(
            "exec", name, "sh", "-c",
            'id -u; id -g; if touch "$BENTO_PATH/.w" 2>/dev/null; then echo root-writable; else echo root-read-only; fi;'
            ' if touch /tmp/.w 2>/dev/null; then echo tmp-writable; else echo tmp-read-only; fi',
            capture=True, check=False, timeout=60,
        )  # fmt: skip
        seen = probe.stdout.split()
        facts["inside"] = seen
        expected = [str(options.user), str(options.group),
                    "root-read-only" if options.read_only_root else "root-writable"]  # fmt: skip
        if seen[:3] != expected or (options.tmpfs and "tmp-writable" not in seen):
            raise fail("inside the container", f"expected {expected} and a writable /tmp, saw {seen} {probe.stderr}")
        # 6. a clean stop on SIGTERM, as Kubernetes stops a pod (rolling updates, scale-down)
        grace = int(options.grace_period_s)
        t0 = time.monotonic()
        engine.run("stop", "--time", str(grace), name, capture=True, check=False, timeout=grace + 30)
        facts["stop_seconds"] = round(time.monotonic() - t0, 1)
        exit_code = engine.run("inspect", "--format", "{{.State.ExitCode}}", name, capture=True, check=False).stdout.strip()
        facts["exit_code"] = exit_code
        if exit_code != "0" or facts["stop_seconds"] >= grace:
            raise fail("stop", f"SIGTERM: exit code {exit_code} after {facts['stop_seconds']} s (killed at {grace} s)")
        _say(f"stopped on SIGTERM in {facts['stop_seconds']} s, exit code 0")
        facts["log_tail"] = _logs(engine, name, tail=15)
        return facts
    finally:
        remove_containers(engine, label)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.containers.serving_image",
        description="Build the serving image (bentoml build + containerize) and check it the way "
        "infra/k8s/base/serving/deployment.yaml runs it.",
    )
    parser.add_argument("--engine", choices=("docker", "podman"), help="default: $CONTAINER_ENGINE, else what is present")
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="export a model folder, bentoml build, bentoml containerize")
    build.add_argument("--model", type=Path, required=True, help="model folder (model.json + model.safetensors)")
    build.add_argument("--base-image", help="CPU component image to start FROM (default: SKINATTN_IMAGE of infra/image.env)")
    build.add_argument("--tag", help="image tag (default: SKINATTN_SERVING_IMAGE of infra/image.env)")
    build.add_argument("--workdir", type=Path, required=True, help="scratch folder: BentoML store and temporary files")

    check = sub.add_parser("check", help="run the image as the Deployment does and check it over HTTP")
    check.add_argument("--image", help="image to run (default: SKINATTN_SERVING_IMAGE of infra/image.env)")
    check.add_argument("--jpeg", type=Path, required=True, help="a real dermoscopy JPEG to classify")
    check.add_argument("--deployment", type=Path, default=DEPLOYMENT_YAML, help="Deployment manifest (default: %(default)s)")
    check.add_argument("--model", type=Path, help="the model folder the image serves: its class names are checked")
    check.add_argument("--port", type=int, help="host port on 127.0.0.1 (default: a free one)")
    check.add_argument("--timeout", type=float, help="seconds to wait for ready (default: the startup probe's budget)")

    show = sub.add_parser("run-args", help="print the run options derived from the Deployment manifest")
    show.add_argument("--deployment", type=Path, default=DEPLOYMENT_YAML)

    args = parser.parse_args(argv)
    from skinattn_components.image import component_image, serving_image  # infra/image.env, overridable by env

    try:
        if args.command == "run-args":
            options = deployment_run_options(args.deployment)
            print(" ".join(options.run_args(args.engine or "podman")))
            return 0
        engine = find_engine(args.engine)
        if args.command == "build":
            build_serving_image(
                engine, model_dir=args.model, base_image=args.base_image or component_image(),
                tag=args.tag or serving_image(), workdir=args.workdir,
            )  # fmt: skip
            return 0
        options = deployment_run_options(args.deployment)
        timeout = args.timeout or (options.startup_probe.budget_s if options.startup_probe else 300)
        class_names = None
        if args.model:
            class_names = json.loads((args.model / "model.json").read_text())["config"]["class_names"]
        facts = check_serving_container(
            engine, args.image or serving_image(), jpeg=args.jpeg,
            deployment_yaml=args.deployment, port=args.port, timeout=timeout, class_names=class_names,
        )  # fmt: skip
        print(json.dumps(facts, indent=2))
        return 0
    except (ServingImageError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
