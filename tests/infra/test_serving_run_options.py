"""The serving container's run options come from the Deployment manifest, and the image agrees with it.

``infra/containers/serving_image.py`` starts the serving image for the end-to-end check with options read
from ``infra/k8s/base/serving/deployment.yaml``. These tests pin what it reads from the real manifest, that
it refuses what it cannot reproduce (so the manifest cannot drift away from what the run tests), and that
the image's own defaults (``serving/bentofile.yaml``, ``serving/Dockerfile.template``) match the manifest.
Fast: no container engine, no server.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from skinattn_components.envfile import read_env_file
from infra.containers.serving_image import (
    DEPLOYMENT_YAML,
    RunOptions,
    TmpfsMount,
    UnsupportedManifest,
    deployment_run_options,
)

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "serving" / "Dockerfile.template"
BENTOFILE = REPO / "serving" / "bentofile.yaml"
GiB = 2**30


@pytest.fixture(scope="module")
def options() -> RunOptions:
    return deployment_run_options(DEPLOYMENT_YAML)


def pairs(args: list[str]) -> set[tuple[str, str]]:
    return set(zip(args, args[1:]))


def test_the_real_manifest_runs_as_10001_on_a_read_only_root_with_a_1gib_tmp(options):
    assert (options.user, options.group) == (10001, 10001)
    assert options.supplementary_groups == (10001,)  # fsGroup
    assert options.read_only_root is True
    assert options.tmpfs == (TmpfsMount("/tmp", 1 * GiB),)
    assert options.container_port == 3000
    assert options.command == () and options.args == ()  # the image's ENTRYPOINT runs, as in Kubernetes


def test_the_real_manifest_environment_is_passed_exactly(options):
    assert options.env == (("BENTOML_HOME", "/tmp/bentoml"), ("HOME", "/tmp"), ("BENTOML_DO_NOT_TRACK", "True"))


def test_the_api_token_comes_from_an_optional_secret_and_the_run_goes_without_it(options):
    """The bearer token of the endpoint (docs/serving.md) is read from the Secret skinattn-serving-auth, which
    may be absent (the server then runs open): the local run reproduces that case, and passes no token."""
    assert options.optional_secret_env == (("SKINATTN_API_TOKEN", "skinattn-serving-auth", "token"),)
    assert "SKINATTN_API_TOKEN" not in options.env_dict
    assert not any("SKINATTN_API_TOKEN" in arg for arg in options.run_args("podman") + options.run_args("docker"))


def test_the_real_manifest_drops_privileges_and_limits_resources(options):
    assert options.cap_drop == ("ALL",) and options.cap_add == ()
    assert options.no_new_privileges is True
    assert options.seccomp_unconfined is False  # RuntimeDefault: the engine's default profile
    assert (options.cpus, options.memory_bytes) == (2.0, 4 * GiB)


def test_the_probes_give_the_paths_and_the_startup_budget(options):
    assert options.startup_probe.path == "/readyz" and options.startup_probe.budget_s == 300
    assert options.readiness_probe.path == "/readyz"
    assert options.liveness_probe.path == "/livez"
    assert options.grace_period_s == 30  # Kubernetes' default: the check stops the container within it


def test_podman_arguments_mirror_every_setting(options):
    args = options.run_args("podman")
    assert ("--user", "10001:10001") in pairs(args)
    assert ("--group-add", "10001") in pairs(args)
    assert "--read-only" in args
    assert "--read-only-tmpfs=false" in args  # else Podman makes /var/tmp and /run writable too
    (tmpfs,) = [b for a, b in pairs(args) if a == "--tmpfs"]
    assert tmpfs.startswith("/tmp:") and "size=1073741824" in tmpfs and "exec" in tmpfs.split(",")
    assert {b for a, b in pairs(args) if a == "--env"} == {"BENTOML_HOME=/tmp/bentoml", "HOME=/tmp", "BENTOML_DO_NOT_TRACK=True"}
    assert ("--cap-drop", "ALL") in pairs(args)
    assert ("--security-opt", "no-new-privileges") in pairs(args)
    assert ("--cpus", "2") in pairs(args) and ("--memory", f"{4 * GiB}b") in pairs(args)
    assert "--privileged" not in args and "--cap-add" not in args


def test_docker_arguments_have_no_podman_only_flag(options):
    args = options.run_args("docker")
    assert "--read-only" in args and "--read-only-tmpfs=false" not in args


# --- refusing what the local run cannot reproduce -------------------------------------------------------


def manifest() -> dict:
    return yaml.safe_load(DEPLOYMENT_YAML.read_text())


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def pod(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def container(doc: dict) -> dict:
    return pod(doc)["containers"][0]


UNSUPPORTED = {
    "container securityContext.seLinuxOptions": lambda d: container(d)["securityContext"].update(seLinuxOptions={"level": "s0"}),
    "container securityContext.procMount": lambda d: container(d)["securityContext"].update(procMount="Unmasked"),
    "capabilities from another key": lambda d: container(d)["securityContext"]["capabilities"].update(keep=["NET_BIND_SERVICE"]),
    "privileged": lambda d: container(d)["securityContext"].update(privileged=True),
    "pod securityContext.supplementalGroups": lambda d: pod(d)["securityContext"].update(supplementalGroups=[5]),
    "pod securityContext.sysctls": lambda d: pod(d)["securityContext"].update(sysctls=[{"name": "a", "value": "1"}]),
    "seccomp Localhost": lambda d: pod(d)["securityContext"].update(seccompProfile={"type": "Localhost", "localhostProfile": "x"}),
    "env valueFrom": lambda d: container(d)["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
    "env from a Secret key not optional": lambda d: container(d)["env"].append(
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": False}}}),
    "env from a ConfigMap key": lambda d: container(d)["env"].append(
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k", "optional": True}}}),
    "envFrom": lambda d: container(d).update(envFrom=[{"configMapRef": {"name": "skinattn-s3"}}]),
    "configMap volume": lambda d: pod(d)["volumes"].append({"name": "cfg", "configMap": {"name": "c"}}),
    "emptyDir with an unknown field": lambda d: pod(d)["volumes"][0]["emptyDir"].update(unknown=True),
    "read-only volumeMount": lambda d: container(d)["volumeMounts"][0].update(readOnly=True),
    "subPath volumeMount": lambda d: container(d)["volumeMounts"][0].update(subPath="x"),
    "mount of an undeclared volume": lambda d: container(d)["volumeMounts"].append({"name": "nope", "mountPath": "/data"}),
    "hostNetwork": lambda d: pod(d).update(hostNetwork=True),
    "initContainers": lambda d: pod(d).update(initContainers=[{"name": "init", "image": "x"}]),
    "a second container": lambda d: pod(d)["containers"].append({"name": "sidecar", "image": "x"}),
    "lifecycle hooks": lambda d: container(d).update(lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}}),
    "a GPU limit": lambda d: container(d)["resources"]["limits"].update({"nvidia.com/gpu": 1}),
    "an exec probe": lambda d: container(d).update(livenessProbe={"exec": {"command": ["true"]}}),
    "a probe on another port": lambda d: container(d)["readinessProbe"]["httpGet"].update(port=9000),
    "a token mounted": lambda d: pod(d).update(automountServiceAccountToken=True),
    "no runAsUser": lambda d: pod(d)["securityContext"].pop("runAsUser"),
    "a UDP port": lambda d: container(d)["ports"][0].update(protocol="UDP"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_a_field_the_run_cannot_reproduce_is_refused_by_name(tmp_path, case):
    doc = manifest()
    UNSUPPORTED[case](doc)
    with pytest.raises(UnsupportedManifest):
        deployment_run_options(write(tmp_path, doc))


def test_the_error_names_the_field(tmp_path):
    doc = manifest()
    container(doc)["securityContext"]["seLinuxOptions"] = {"level": "s0"}
    with pytest.raises(UnsupportedManifest, match=r"seLinuxOptions cannot be reproduced"):
        deployment_run_options(write(tmp_path, doc))


def test_changes_in_the_manifest_change_the_run(tmp_path):
    doc = copy.deepcopy(manifest())
    pod(doc)["securityContext"].update(runAsUser=20002, runAsGroup=20003)
    container(doc)["securityContext"]["allowPrivilegeEscalation"] = True
    container(doc)["securityContext"]["readOnlyRootFilesystem"] = False
    container(doc)["env"].append({"name": "SKINATTN_MAX_BATCH_SIZE", "value": "8"})
    pod(doc)["volumes"][0]["emptyDir"]["sizeLimit"] = "256Mi"
    changed = deployment_run_options(write(tmp_path, doc))
    assert (changed.user, changed.group) == (20002, 20003)
    assert changed.no_new_privileges is False and changed.read_only_root is False
    assert changed.env_dict["SKINATTN_MAX_BATCH_SIZE"] == "8"
    assert changed.tmpfs == (TmpfsMount("/tmp", 256 * 2**20),)
    args = changed.run_args("podman")
    assert "--read-only" not in args and ("--security-opt", "no-new-privileges") not in pairs(args)


# --- the image's defaults agree with the manifest -------------------------------------------------------


def test_the_bentofile_image_environment_equals_the_manifest_environment(options):
    """The top-level ``envs:`` (BentoML 1.4's form, a list of {name, value}), in the manifest's order; no
    ``docker.env`` beside it, which would silently win over ``envs:`` on the template's path."""
    bentofile = yaml.safe_load(BENTOFILE.read_text())
    assert bentofile["docker"]["dockerfile_template"] == "serving/Dockerfile.template"
    assert "env" not in bentofile["docker"]
    assert all(set(entry) == {"name", "value"} and isinstance(entry["value"], str) for entry in bentofile["envs"])
    assert [(entry["name"], entry["value"]) for entry in bentofile["envs"]] == list(options.env)


def test_the_bentofile_envs_are_what_bentoml_passes_to_the_template(options):
    """``bentoml build`` (BentoBuildConfig.with_defaults) fills ``docker.env`` from ``envs:``: the mapping the
    template's ENV lines come from."""
    from bentoml._internal.bento.build_config import BentoBuildConfig

    with BENTOFILE.open() as stream:
        filled = BentoBuildConfig.from_yaml(stream).with_defaults()
    assert filled.docker.env == options.env_dict
    assert [(env.name, env.value) for env in filled.envs] == list(options.env)


def test_the_template_default_base_is_the_cpu_component_image():
    defaults = re.findall(r"^ARG SKINATTN_BASE_IMAGE=(\S+)$", TEMPLATE.read_text(), flags=re.M)
    assert defaults == [read_env_file(REPO / "infra" / "image.env")["SKINATTN_IMAGE"]]


def test_the_rendered_dockerfile_installs_nothing_and_runs_as_the_manifest_user(options, tmp_path, monkeypatch):
    """Rendered by BentoML's own generator (what ``bentoml containerize`` runs), from the bentofile."""
    from bentoml._internal.bento.build_config import BentoBuildConfig, CondaOptions
    from bentoml._internal.container.generate import generate_containerfile

    monkeypatch.chdir(REPO)  # BentoML resolves the template relative to the build context, inside the cwd
    with BENTOFILE.open() as stream:
        docker = BentoBuildConfig.from_yaml(stream).with_defaults().docker  # docker.env filled from envs:
    text = generate_containerfile(docker, str(REPO), conda=CondaOptions(), bento_fs=tmp_path,
                                  enable_buildkit=False)  # fmt: skip
    instructions = [line.split()[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert "RUN" not in instructions  # no package installed, no container needed to build
    assert re.search(r"^FROM \$\{SKINATTN_BASE_IMAGE\}$", text, flags=re.M)
    assert re.search(r"^ARG SKINATTN_BASE_IMAGE=\S+$", text, flags=re.M).start() < text.index("FROM ")
    assert f"COPY --chown={options.user}:{options.group} . ./" in text
    assert text.rstrip().splitlines()[-2:] == [
        f"USER {options.user}:{options.group}",
        'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]',
    ]
    for name, value in options.env:
        assert f"\nENV {name}={value}\n" in text


def test_containerize_runs_where_bentoml_accepts_the_template(tmp_path, monkeypatch):
    """BentoML 1.4.40 reads the bento's Dockerfile.template only from below the current folder and never
    through a hidden folder (bentoml/BentoML#5566): the build picks a scratch folder that qualifies."""
    from infra.containers.serving_image import _containerize_dir

    assert _containerize_dir(tmp_path / "work") == tmp_path / "work" / "tmp"
    monkeypatch.setenv("TMPDIR", str(tmp_path / "system"))
    (tmp_path / "system").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    fallback = _containerize_dir(tmp_path / ".hidden" / "work")
    assert fallback.is_dir() and fallback.is_relative_to(tmp_path / "system")
    assert not any(part.startswith(".") for part in fallback.parts)
