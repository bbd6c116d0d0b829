"""``make images``: build the CPU and CUDA component images and the serving image, with Docker or Podman.

Each component image is built from ``infra/docker/Dockerfile*`` with

- ``BASE_IMAGE``: the Dockerfile's pinned official base, or with ``--standin-bases`` a stand-in built from
  Debian packages where the official one cannot be pulled (``bases.py``);
- the build context ``wheelhouse``: every Python package resolved on the host (``wheelhouse.py``) and
  installed with ``pip install --no-index``, when the host's Python has the base image's ``major.minor``;
  otherwise (the official CUDA base has Ubuntu's Python 3.12) a requirement list only, and the build
  installs from the package index (``PIP_INDEX_URL``/``PIP_EXTRA_INDEX_URL`` build arguments);
- the optional CA bundle as the build secret ``ca-bundle`` (never in a layer).

torch comes from PyTorch's index for the image's kind (CPU-only wheels for the CPU image, CUDA 13.0 for the
CUDA image); ``--torch-index-url ''`` leaves the choice to pip's configuration (``make e2e`` does, since
these machines reach PyPI only). The serving image is the bento of one registered model on top of the CPU
image (``serving_image.py``). ``python -m infra.containers.images --help`` for the options.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.containers import bases, wheelhouse
from infra.containers.engine import ENGINES, Engine, EngineError, find_engine, run_in_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "infra" / "docker"
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu130"}
DOCKERFILE = {"cpu": DOCKER_DIR / "Dockerfile", "cuda": DOCKER_DIR / "Dockerfile.gpu"}


@dataclass(frozen=True)
class BuildSettings:
    engine: Engine
    work: Path  # wheelhouses live here
    standin_bases: bool
    torch_index_url: str | None  # None: PyTorch's index for the image's kind; "": pip's configuration
    ca_bundle: Path | None
    from_index: bool = False  # no wheelhouse: the build installs from the package index


def release_tags() -> dict[str, str]:
    """The image names and tags of infra/image.env (environment variables of the same name override)."""
    from skinattn_components.image import component_image, gpu_image, serving_image

    return {"cpu": component_image(), "cuda": gpu_image(), "serving": serving_image()}


def image_python(engine: Engine, image: str) -> str | None:
    """``major.minor`` of ``python3`` in ``image``, or None when it has none (the CUDA base installs it)."""
    try:
        out = run_in_image(engine, image, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    except Exception:  # noqa: BLE001 - no python3 in the base is an answer, not an error
        return None
    return out.strip() or None


def wheelhouse_for(settings: BuildSettings, kind: str, base: bases.Base) -> Path:
    """The build context ``wheelhouse`` for ``kind`` on ``base``: wheels when the host can resolve them for
    the base's Python, else only the requirement list (the build then installs from the index)."""
    index = TORCH_INDEX[kind] if settings.torch_index_url is None else settings.torch_index_url
    host = "%d.%d" % sys.version_info[:2]
    target = image_python(settings.engine, base.image)
    key = hashlib.sha256(f"{host}|{index}".encode()).hexdigest()[:10]
    if settings.from_index or target != host:
        why = "--from-index" if settings.from_index else (
            f"the base's Python is {target or 'installed by the Dockerfile'}, this host's {host}")  # fmt: skip
        print(f"{kind}: {why}: the build installs from the package index", flush=True)
        return wheelhouse.write_requirements_only(settings.work / f"requirements-{kind}", wheelhouse.project_requirements())
    out = settings.work / f"wheelhouse-{host}-{key}"
    return wheelhouse.build_wheelhouse(out, extra_index_urls=[index] if index else [])


def build_component_image(settings: BuildSettings, kind: str, tag: str,
                          wheels: dict[tuple[str, str], Path]) -> dict[str, Any]:  # fmt: skip
    """Build the ``kind`` ("cpu"/"cuda") component image as ``tag``; check that ``skinattn`` runs in it as a
    non-root user. ``wheels`` caches wheelhouses across calls (the e2e's two images share one)."""
    engine = settings.engine
    base = bases.resolve_base(engine, bases.dockerfile_base(DOCKERFILE[kind]), allow_standin=settings.standin_bases)
    cache_key = (base.image, settings.torch_index_url if settings.torch_index_url is not None else TORCH_INDEX[kind])
    house = wheels.get(cache_key)
    if house is None:
        house = wheels[cache_key] = wheelhouse_for(settings, kind, base)
    print(f"building {tag} from {DOCKERFILE[kind].relative_to(REPO_ROOT)} on {base.image}", flush=True)
    build_args = {"BASE_IMAGE": base.image}
    if settings.torch_index_url is not None:  # what an index build (no wheels) takes torch from
        build_args["PIP_EXTRA_INDEX_URL"] = settings.torch_index_url
    engine.build(dockerfile=DOCKERFILE[kind], tag=tag, context=REPO_ROOT, build_args=build_args,
                 build_contexts={"wheelhouse": house},
                 secrets={"ca-bundle": settings.ca_bundle} if settings.ca_bundle else None)  # fmt: skip
    uid, version = check_component_image(engine, tag, secret=settings.ca_bundle)
    size = engine.image_size(tag)
    print(f"{tag}: '{version}' runs as uid {uid}; {size / 1e9:.2f} GB", flush=True)
    return {"tag": tag, "base": base.image, "standin_base": base.standin, "bytes": size, "uid": uid, "version": version}


# What a pipeline step needs of the image at run time, checked in one throw-away container as its user.
_IMAGE_CHECK = """
set -eu
id -u
skinattn --version
for dir in /gcs /minio /s3 /oci; do
    touch "$dir/.skinattn-check" || { echo "the image user cannot write $dir (KFP's artifact paths)" >&2; exit 3; }
    rm "$dir/.skinattn-check"
done
"""


def check_component_image(engine: Engine, tag: str, secret: Path | None = None) -> tuple[str, str]:
    """``(uid, skinattn --version)`` of ``tag``; raises if it runs as root, lacks the CLI, its user cannot
    write KFP's artifact paths, or (``secret``) a file with the secret's exact content is in the image."""
    uid, version = run_in_image(engine, tag, ["sh", "-c", _IMAGE_CHECK]).strip().splitlines()
    if uid == "0":
        raise RuntimeError(f"{tag} runs as root; the Dockerfile's USER must be the numeric non-root user")
    if secret is not None:
        digest = hashlib.sha256(secret.read_bytes()).hexdigest()
        # Only files of the secret's exact size are hashed, so this takes seconds on a 7 GB image.
        search = f"find / -xdev -type f -size {secret.stat().st_size}c -exec sha256sum {{}} + 2>/dev/null || true"
        found = [line.split(None, 1)[1] for line in run_in_image(engine, tag, ["sh", "-c", search]).splitlines()
                 if line.startswith(digest)]  # fmt: skip
        if found:
            raise RuntimeError(f"{tag} holds a copy of the build secret {secret}: {found}")
    return uid, version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.containers.images",
        description="Build the CPU and CUDA component images (infra/docker) and the serving image (bento of a "
        "registered model on the CPU image) with Docker or Podman. Tags default to infra/image.env.",
    )
    parser.add_argument("--engine", choices=ENGINES, help="default: $CONTAINER_ENGINE, else Docker if its daemon "
                        "answers, else Podman")  # fmt: skip
    parser.add_argument("--only", action="append", choices=("cpu", "cuda", "serving"),
                        help="build only these images (repeatable; default all three)")  # fmt: skip
    parser.add_argument("--standin-bases", action="store_true",
                        help="where an official base image cannot be pulled, build a stand-in from Debian packages")  # fmt: skip
    parser.add_argument("--torch-index-url", default=None, metavar="URL",
                        help="where torch comes from: default PyTorch's CPU index (CPU image) and cu130 index (CUDA "
                        "image); '' = pip's own configuration")  # fmt: skip
    default_ca = os.environ.get("SKINATTN_CA_BUNDLE")
    parser.add_argument("--ca-bundle", type=Path, default=Path(default_ca) if default_ca else None,
                        help="extra CA bundle for the builds' network access, passed as the build secret "
                        "'ca-bundle' (default $SKINATTN_CA_BUNDLE)")  # fmt: skip
    parser.add_argument("--from-index", action="store_true",
                        help="no wheelhouse: the build itself pip-installs the requirements from PyPI and the torch "
                        "index (--torch-index-url, else the Dockerfile's), which it must reach (behind a proxy: "
                        "--ca-bundle)")  # fmt: skip
    parser.add_argument("--model", default=None, help="serving image: a model folder or a registry version "
                        "(production, v3) of --registry (default: production)")  # fmt: skip
    parser.add_argument("--registry", default=os.environ.get("SKINATTN_REGISTRY", "registry"),
                        help="registry root for --model (default $SKINATTN_REGISTRY, else ./registry)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "build" / "images",
                        help="wheelhouses and the bento's store (default build/images)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return build(args)
    except (EngineError, RuntimeError, OSError) as exc:
        print(f"make images: {exc}", file=sys.stderr)
        return 1


def build(args: argparse.Namespace) -> int:
    kinds = args.only or ["cpu", "cuda", "serving"]
    settings = BuildSettings(find_engine(args.engine), args.work.resolve(), args.standin_bases, args.torch_index_url,
                             args.ca_bundle, from_index=args.from_index)  # fmt: skip
    tags = release_tags()
    built: dict[str, Any] = {}
    wheels: dict[tuple[str, str], Path] = {}
    for kind in ("cpu", "cuda"):
        if kind in kinds:
            built[kind] = build_component_image(settings, kind, tags[kind], wheels)
    if "serving" in kinds:
        built["serving"] = build_serving(settings, args.model, args.registry, base_image=tags["cpu"], tag=tags["serving"])
    print(json.dumps(built, indent=2))
    return 0


def build_serving(settings: BuildSettings, model: str | None, registry: str, *, base_image: str, tag: str) -> dict[str, Any]:
    """The serving image of ``model`` (folder, or version of ``registry``) on the CPU image ``base_image``."""
    from infra.containers.serving_image import build_serving_image
    from skinattn.models.weights import CARD_FILE
    from skinattn.registry import Registry

    model = model or "production"
    if (Path(model) / CARD_FILE).is_file():
        model_dir = Path(model)
    else:
        model_dir = Registry(registry).download(model, settings.work / "serving-model" / model)
    build_serving_image(settings.engine, model_dir=model_dir, base_image=base_image, tag=tag, workdir=settings.work / "serving")
    return {"tag": tag, "model": str(model_dir), "bytes": settings.engine.image_size(tag)}


if __name__ == "__main__":
    sys.exit(main())
