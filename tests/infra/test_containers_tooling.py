"""The container tooling of ``make images`` / ``make e2e`` (infra/containers), without building the real images
(one test builds a two-line image FROM scratch): the parts whose mistakes would only show up minutes into a build or
on a cluster."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import yaml

from infra.containers import bases, e2e, engine, wheelhouse

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = REPO_ROOT / "infra" / "k8s" / "base" / "serving" / "deployment.yaml"


def test_wheel_names_become_pins(tmp_path):
    for name in ("grad_cam-1.5.7-py3-none-any.whl", "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",
                 "kfp_pipeline_spec-2.17.3-py3-none-any.whl"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    assert wheelhouse.pins(tmp_path) == ["grad-cam==1.5.7", "kfp-pipeline-spec==2.17.3", "torch==2.14.1"]
    (tmp_path / "not-a-wheel.whl").write_bytes(b"")
    with pytest.raises(ValueError, match="not-a-wheel.whl"):
        wheelhouse.pins(tmp_path)


def test_failed_resolution_keeps_the_previous_wheelhouse(tmp_path):
    out = tmp_path / "wheelhouse"
    out.mkdir()
    (out / "requirements.txt").write_text("kept==1\n")
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    with pytest.raises(RuntimeError, match="pip wheel"):
        wheelhouse.build_wheelhouse(out, requirements=["skinattn-no-such-package==0"], index_url=empty_index.as_uri())
    assert (out / "requirements.txt").read_text() == "kept==1\n"
    assert not (tmp_path / "wheelhouse.partial").exists()


def test_requirements_only_wheelhouse_has_no_wheels(tmp_path):
    (tmp_path / "old-1.0-py3-none-any.whl").write_bytes(b"")
    wheelhouse.write_requirements_only(tmp_path, ["torch==2.14.1", "timm>=1.0.20"])
    assert not list(tmp_path.glob("*.whl"))
    assert (tmp_path / "requirements.txt").read_text().splitlines() == ["torch==2.14.1", "timm>=1.0.20"]


def test_dockerfiles_name_their_pinned_base(tmp_path):
    docker = REPO_ROOT / "infra" / "docker"
    assert bases.dockerfile_base(docker / "Dockerfile").startswith("docker.io/library/python:3.11")
    assert bases.dockerfile_base(docker / "Dockerfile.gpu").startswith("docker.io/nvidia/cuda:")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM scratch\n")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        bases.dockerfile_base(bad)


def test_engine_choice_is_checked(monkeypatch):
    with pytest.raises(engine.EngineError, match="expected one of docker, podman"):
        engine.find_engine("lxc")
    monkeypatch.setattr(engine, "_docker_daemon_answers", lambda: False)
    with pytest.raises(engine.EngineError, match="docker info"):
        engine.find_engine("docker")


def test_podman_gets_the_project_configuration(monkeypatch):
    monkeypatch.delenv("CONTAINERS_CONF", raising=False)
    assert engine.Engine("podman").env["CONTAINERS_CONF"] == str(engine.CONTAINERS_CONF)
    assert "CONTAINERS_CONF" not in engine.Engine("docker").env
    text = engine.CONTAINERS_CONF.read_text()
    assert re.search(r'^runtime = "runc"$', text, flags=re.MULTILINE)
    assert engine.default_ulimits() == [("nofile", 1024, 4096), ("nproc", 4096, 4096)]


def test_a_failing_step_is_named_and_timed():
    report = e2e.Report()
    with pytest.raises(e2e.StepFailed, match="step 'scoring' failed: RuntimeError: 3 images missing"):
        with report.step("scoring"):
            raise RuntimeError("3 images missing")
    assert report.steps[-1]["step"] == "scoring" and report.steps[-1]["ok"] is False
    assert "FAILED" in report.table()


def test_components_run_as_the_user_the_manifests_declare(clean_env):
    """The e2e runner leaves the user to the image (as a KFP pod does), and the images' USER is the uid and
    gid that the serving Deployment declares (the serving image inherits the CPU image's user)."""
    runner = e2e.docker_runner({"AWS_REGION": "x"}, "skinattn-e2e=test")
    assert "user" not in runner.container_run_args and "read_only" not in runner.container_run_args
    assert runner.container_run_args["network_mode"] == "host"
    assert runner.container_run_args["labels"] == {"skinattn-e2e": "test"}
    pod = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["securityContext"]
    for dockerfile in (REPO_ROOT / "infra" / "docker").glob("Dockerfile*"):
        user = re.findall(r"^USER (\d+):(\d+)$", dockerfile.read_text(), flags=re.MULTILINE)[-1]
        assert (int(user[0]), int(user[1])) == (pod["runAsUser"], pod["runAsGroup"]), dockerfile.name


def test_e2e_s3_environment_is_what_the_cluster_gives_a_pod(clean_env):
    """The variables the e2e containers get are exactly the S3 ConfigMap and Secret keys of cluster.env."""
    from skinattn_components.cluster import s3_settings

    settings = s3_settings()
    with e2e.s3_server() as env:
        assert list(env) == [*settings.config_map_keys, *settings.secret_keys]
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def _engine_or_skip() -> engine.Engine:
    try:
        return engine.find_engine()
    except engine.EngineError as exc:
        pytest.skip(f"no container engine here: {exc}")


def test_a_rebuild_removes_the_image_it_replaced(tmp_path):
    """Each e2e run rebuilds its images; the images they replace must not pile up on the disk (CI ran out)."""
    eng = _engine_or_skip()
    tag = f"localhost/skinattn-rebuild-check:{uuid.uuid4().hex[:8]}"
    (tmp_path / "Containerfile").write_text("FROM scratch\nCOPY stamp /stamp\n")
    try:
        ids = []
        for stamp in ("first", "second"):
            (tmp_path / "stamp").write_text(stamp)
            eng.build(dockerfile=tmp_path / "Containerfile", tag=tag, context=tmp_path)
            ids.append(eng.image_id(tag))
        assert None not in ids and ids[0] != ids[1]
        assert not eng.image_exists(ids[0]), "the replaced image is still stored"
        assert eng.image_exists(ids[1])
        # An image that still carries a tag is never removed.
        assert not eng.remove_untagged(ids[1]) and eng.image_exists(ids[1])
    finally:
        eng.run("rmi", "--force", tag, capture=True, check=False)


def test_the_disk_check_asks_less_when_the_images_are_there(monkeypatch):
    class Stored:
        def __init__(self, present: set[str]):
            self.present = present

        def image_exists(self, ref: str) -> bool:
            return ref in self.present

    assert e2e.needed_disk_gb(Stored(set(e2e.IMAGES.values()))) == e2e.REBUILD_DISK_GB
    assert e2e.needed_disk_gb(Stored({e2e.IMAGES["cpu"]})) == e2e.FIRST_BUILD_DISK_GB
    with pytest.raises(RuntimeError, match="needs? about 10000 GB"):
        e2e.check_disk(10_000, Path("/"))
