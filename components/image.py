"""The container images that pipeline components run in (their ``base_image``).

Defaults come from ``infra/image.env``, the one place the names and tags are defined; the environment
variables ``SKINATTN_IMAGE`` and ``SKINATTN_GPU_IMAGE`` override them at compile time, e.g. to try a
development build without editing the repository::

    SKINATTN_IMAGE=registry.example.com/skinattn:dev skinattn pipeline compile --out build/pipelines
"""

from __future__ import annotations

from skinattn_components.envfile import INFRA_DIR, setting

IMAGE_ENV_FILE = INFRA_DIR / "image.env"


def component_image() -> str:
    """Image for CPU pipeline steps (built from ``infra/docker/Dockerfile``)."""
    return setting(IMAGE_ENV_FILE, "SKINATTN_IMAGE")


def gpu_image() -> str:
    """Image for GPU pipeline steps (built from ``infra/docker/Dockerfile.gpu``)."""
    return setting(IMAGE_ENV_FILE, "SKINATTN_GPU_IMAGE")


def serving_image() -> str:
    """Image of the BentoML service (``bentoml containerize``), deployed by ``infra/k8s``."""
    return setting(IMAGE_ENV_FILE, "SKINATTN_SERVING_IMAGE")
