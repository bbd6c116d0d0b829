"""Copy a registered version into the BentoML model store, for ``bentoml serve`` / ``bentoml build``.

This module is the only part of :mod:`skinattn.registry` that touches BentoML, and nothing in
``skinattn`` imports it at module level: the core library must run where BentoML is not installed or not
wanted (training images, KFP components, the CLI's fast start), and importing ``bentoml`` costs seconds
and configures global state (its home folder, usage tracking) as a side effect. Import this module only
when exporting.

The BentoML model is created with ``bentoml.models.create`` (``bentoml.pytorch`` is deprecated since
1.4) and holds the same files as the registry version: ``model.safetensors``, ``model.json`` and
``metrics.json``, so a service loads it with :func:`skinattn.models.load_model` on ``ref.path``.
"""

from __future__ import annotations

import re
from typing import Any

from skinattn.registry.core import Registry
from skinattn.registry.errors import RegistryError
from skinattn.registry.records import ModelVersion

DEFAULT_MODEL_NAME = "skinattn"
_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")


def bentoml_labels(version: ModelVersion) -> dict[str, str]:
    """Short string labels BentoML shows and filters on (``bentoml models list``)."""
    return {
        "registry_version": version.version,
        "arch": str(version.model.get("arch", "unknown")),
        "soft_attention": str(bool(version.model.get("soft_attention", False))).lower(),
    }


def bentoml_metadata(registry: Registry, version: ModelVersion) -> dict[str, Any]:
    """Everything a service or a person needs to know about the exported model, as BentoML metadata."""
    # BentoML refuses None in metadata: non-finite metrics (None in the registry) are listed by name
    # instead, and missing strings become "".
    return {
        "registry": registry.uri,
        "version": version.version,
        "registered_at": version.registered_at,
        "metrics": {name: value for name, value in version.metrics.items() if value is not None},
        "non_finite_metrics": sorted(name for name, value in version.metrics.items() if value is None),
        "class_names": version.class_names,
        "input_size": int(version.model.get("input_size") or 0),
        "run_id": version.run_id or "",
        "data_fingerprint": version.data_fingerprint or "",
        "weights_sha256": version.files["model.safetensors"].sha256,
    }


def export_to_bentoml(
    registry: Registry | str | None,
    version: str | int = "production",
    *,
    model_name: str = DEFAULT_MODEL_NAME,
) -> str:
    """Create the BentoML model ``<model_name>:<version>`` (e.g. ``skinattn:v3``) and return its tag.

    ``registry`` is a :class:`Registry` or a root URI (None: the default root). Exporting the same version
    again returns the existing tag; a different model already under that tag (another registry's ``v3``)
    is refused, naming the tag, rather than overwritten.
    """
    import bentoml  # on demand only: see the module docstring

    if not isinstance(registry, Registry):
        registry = Registry(registry)
    if not _NAME_PATTERN.match(model_name):
        raise RegistryError(f"{model_name!r} is not a valid BentoML model name (lowercase letters, digits, '.', '_', '-')")
    record = registry.get(version)
    tag = f"{model_name}:{record.version}"
    metadata = bentoml_metadata(registry, record)
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if existing.info.metadata.get("weights_sha256") == metadata["weights_sha256"]:
            return str(existing.tag)
        raise RegistryError(
            f"BentoML model {tag} already exists with different weights (exported from "
            f"{existing.info.metadata.get('registry', 'another registry')}); pass another model name"
        )
    with bentoml.models.create(tag, labels=bentoml_labels(record), metadata=metadata) as ref:
        registry.download(record, ref.path)
    return str(ref.tag)
