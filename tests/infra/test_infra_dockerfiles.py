"""Facts about infra/docker that hadolint cannot know: versions that must agree with the project."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO_ROOT / "infra" / "docker").glob("Dockerfile*"))


def build_arg(text: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", text, flags=re.MULTILINE)
    assert match, f"ARG {name} not found"
    return match.group(1)


def test_both_images_are_defined():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile", "Dockerfile.gpu"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_packages_come_only_from_the_wheelhouse_requirements(dockerfile):
    """No package pin in a Dockerfile can drift from pyproject.toml: the build installs the requirement list
    of the ``wheelhouse`` context, which infra/containers/wheelhouse.py resolves from pyproject.toml."""
    text = dockerfile.read_text()
    assert not re.search(r"\b(torch|torchvision)==", text)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    installs = re.findall(r"pip install [^\n]*", code)
    assert installs and all("--find-links /wheels" in line for line in installs), installs
    assert "-r /tmp/requirements.txt" in text and "COPY --from=wheelhouse requirements.txt /tmp/requirements.txt" in text


def test_wheelhouse_requirements_pin_torch_as_pyproject():
    from infra.containers.wheelhouse import project_requirements

    pins = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements = project_requirements()
    for pin in pins:
        assert pin in requirements
    assert any(r.startswith("setuptools") for r in requirements), "the image builds the project: backend needed"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_external_base_image_is_pinned_and_user_is_numeric_non_root(dockerfile):
    text = dockerfile.read_text()
    base = build_arg(text, "BASE_IMAGE")
    assert re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE) == ["${BASE_IMAGE}"], "one stage, on BASE_IMAGE"
    registry, _, _ = base.partition("/")
    assert "." in registry, f"{base}: fully qualified, so Docker and Podman resolve the same image"
    tag = base.rsplit(":", 1)[-1]
    assert tag != "latest" and re.search(r"\d+\.\d+", tag), base
    # Numeric, so Kubernetes can verify runAsNonRoot; and the last USER wins.
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users and re.fullmatch(r"[1-9]\d{4,}:[1-9]\d{4,}", users[-1])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_ca_bundle_is_a_secret_mount_never_a_copy(dockerfile):
    text = dockerfile.read_text()
    assert "--mount=type=secret,id=ca-bundle" in text
    assert not re.search(r"^(COPY|ADD)\b.*(ca-bundle|\.crt|\.pem)", text, flags=re.MULTILINE | re.IGNORECASE)


def test_gpu_base_cuda_matches_the_torch_build():
    from infra.containers.images import TORCH_INDEX

    text = (REPO_ROOT / "infra" / "docker" / "Dockerfile.gpu").read_text()
    base = re.search(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+$", build_arg(text, "BASE_IMAGE"))
    index = re.search(r"/whl/cu(\d+)$", build_arg(text, "PIP_EXTRA_INDEX_URL"))
    assert base and index
    assert index.group(1) == base.group(1) + base.group(2), "torch's CUDA build must match the base image"
    assert TORCH_INDEX["cuda"] == build_arg(text, "PIP_EXTRA_INDEX_URL"), "make images resolves from the same index"
    cpu = (REPO_ROOT / "infra" / "docker" / "Dockerfile").read_text()
    assert TORCH_INDEX["cpu"] == build_arg(cpu, "PIP_EXTRA_INDEX_URL") and TORCH_INDEX["cpu"].endswith("/whl/cpu")


def test_build_context_keeps_out_everything_but_the_distribution_sources():
    lines = [l for l in (REPO_ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*", "allow-list: deny everything first"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "skinattn", "components", "pipelines"}
    for dockerfile in DOCKERFILES:
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE)
        sources = {src.rstrip("/") for line in copied for src in line.split()}
        assert sources <= allowed, f"{dockerfile.name} copies {sources - allowed}, which .dockerignore excludes"
