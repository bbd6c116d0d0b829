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
def test_torch_versions_match_pyproject(dockerfile):
    pins = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = dict(re.fullmatch(r"(torch|torchvision)==(\S+)", p).groups() for p in pins if re.match(r"torch(vision)?==", p))
    text = dockerfile.read_text()
    assert build_arg(text, "TORCH_VERSION") == pinned["torch"]
    assert build_arg(text, "TORCHVISION_VERSION") == pinned["torchvision"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_external_base_image_is_pinned_and_user_is_numeric_non_root(dockerfile):
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, flags=re.MULTILINE)
    aliases = {alias for _, alias in stages}
    external = [ref for ref, _ in stages if ref not in aliases]
    assert len(external) == 1, "one pinned external base, reused by every stage"
    tag = external[0].rsplit(":", 1)[-1]
    assert tag != "latest" and re.search(r"\d+\.\d+", tag), external[0]
    # Numeric, so Kubernetes can verify runAsNonRoot; and the last USER wins for the final stage.
    users = re.findall(r"^USER (\S+)$", text, flags=re.MULTILINE)
    assert users and re.fullmatch(r"[1-9]\d{4,}:[1-9]\d{4,}", users[-1])


def test_gpu_base_cuda_matches_the_torch_build():
    text = (REPO_ROOT / "infra" / "docker" / "Dockerfile.gpu").read_text()
    base = re.search(r"^FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+ AS", text, flags=re.MULTILINE)
    index = re.search(r"/whl/cu(\d+)$", build_arg(text, "TORCH_INDEX_URL"))
    assert base and index
    assert index.group(1) == base.group(1) + base.group(2), "torch's CUDA build must match the base image"


def test_build_context_keeps_out_everything_but_the_package():
    lines = [l for l in (REPO_ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*", "allow-list: deny everything first"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "skinattn"}
    for dockerfile in DOCKERFILES:
        copied = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE)
        sources = {src.rstrip("/") for line in copied for src in line.split()}
        assert sources <= allowed, f"{dockerfile.name} copies {sources - allowed}, which .dockerignore excludes"
