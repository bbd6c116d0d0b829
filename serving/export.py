"""Putting a model into the BentoML model store, where ``bentoml serve`` and ``bentoml build`` take it from.

A model comes from one of two places: a registry version (``production``, ``latest``, ``v3``), tagged
``<name>:v3``, or a model folder on disk (``model.json`` + ``model.safetensors``, e.g. a training run's
output), tagged ``<name>:local-<sha256 prefix of its weights>``. Both go through :func:`export_model`: the
source only decides the tag's version, the labels, the metadata and which files are written; looking up an
existing tag, refusing a clash and creating the BentoML model are one code path.

The BentoML model is created with ``bentoml.models.create`` (``bentoml.pytorch`` is deprecated since 1.4)
and holds the model's files as they are (``model.safetensors``, ``model.json``, and ``metrics.json`` for a
registry version), so the service loads it with :func:`skinattn.models.load_model` on ``ref.path``, plus the
model card (``MODEL_CARD.md`` + ``model_card.json``: a registry version's own, else built from ``model.json``
and ``metrics.json``), which the service serves at ``GET /model-card``.

This lives in ``serving/``, not in the ``skinattn`` package: the core library must run where BentoML is
not installed or not wanted (training images, KFP components), and importing ``bentoml`` configures
global state (its home folder, usage tracking). Set ``BENTOML_DO_NOT_TRACK=True`` before importing this
module on a machine without internet (``python -m serving`` does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bentoml

from serving.model_card import write_card_files
from skinattn.errors import SkinattnError
from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE, read_card
from skinattn.registry import ModelVersion, Registry, RegistryError

DEFAULT_MODEL_NAME = "skinattn"
_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")


class ExportError(SkinattnError):
    """The model cannot be exported under the asked name; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class ExportSource:
    """What a source contributes to an export: the tag's version, BentoML labels and metadata (always with
    ``weights_sha256``, which tells an existing identical model from a clash), and a function that writes
    the model's files into the new BentoML model's folder."""

    version: str
    labels: dict[str, str]
    metadata: dict[str, Any]
    write_files: Callable[[Path], object]


def registry_source(registry: Registry, version: str | int = "production") -> ExportSource:
    """A registry version: tag version ``v3``, the registry's record as labels and metadata, and its files
    downloaded with every digest checked."""
    record = registry.get(version)
    return ExportSource(
        version=record.version,
        labels=_registry_labels(record),
        metadata=_registry_metadata(registry, record),
        write_files=lambda folder: registry.download(record, folder),
    )


def folder_source(model_dir: str | Path) -> ExportSource:
    """A model folder not (yet) in a registry: tag version ``local-<first 16 hex digits of the weights'
    sha256>``, so exporting the same weights twice finds the same model."""
    model_dir = Path(model_dir).resolve()
    card = read_card(model_dir)  # refuses a folder that is not a model, naming the file
    weights = model_dir / str(card.get("weights", WEIGHTS_FILE))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    version = f"local-{digest[:16]}"

    def write_files(folder: Path) -> None:
        for name in (weights.name, CARD_FILE):
            shutil.copy2(model_dir / name, folder / name)

    config = card.get("config", {})
    return ExportSource(
        version=version,
        labels={"source": "folder", "arch": str(config.get("arch", "unknown")),
                "soft_attention": str(bool(config.get("soft_attention", False))).lower()},  # fmt: skip
        metadata={"version": version, "source": str(model_dir), "weights_sha256": digest},
        write_files=write_files,
    )


def resolve_source(model: str | Path, registry: Registry | str | None = None) -> ExportSource:
    """``model`` as a folder when one exists at that path, else as a version of ``registry`` (a
    :class:`Registry`, a root URI, or None for ``$SKINATTN_REGISTRY`` / ``./registry``)."""
    if Path(model).is_dir():
        return folder_source(model)
    if not isinstance(registry, Registry):
        registry = Registry(registry)
    if "://" not in registry.uri and not Path(registry.uri).is_dir():
        # Said plainly: a missing folder would otherwise read as "no production version yet".
        raise RegistryError(f"{registry.uri}: no registry here, the folder does not exist, and {str(model)!r} "
                            "is not a model folder either (check --root or $SKINATTN_REGISTRY)")  # fmt: skip
    return registry_source(registry, str(model))


def export_model(model: str | Path = "production", registry: Registry | str | None = None, *,
                 model_name: str = DEFAULT_MODEL_NAME) -> str:  # fmt: skip
    """Create the BentoML model ``<model_name>:<version>`` from ``model`` (see :func:`resolve_source`) and
    return its tag, e.g. ``skinattn:v3`` or ``skinattn:local-0123456789abcdef``.

    Exporting the same weights again returns the existing tag; a different model already under that tag
    (another registry's ``v3``) is refused, naming the tag, rather than overwritten.
    """
    if not _NAME_PATTERN.match(model_name):
        raise ExportError(f"{model_name!r} is not a valid BentoML model name (lowercase letters, digits, '.', '_', '-')")
    source = resolve_source(model, registry)
    tag = f"{model_name}:{source.version}"
    try:
        existing = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        existing = None
    if existing is not None:
        if existing.info.metadata.get("weights_sha256") == source.metadata["weights_sha256"]:
            return str(existing.tag)
        origin = existing.info.metadata.get("registry") or existing.info.metadata.get("source") or "elsewhere"
        raise ExportError(f"BentoML model {tag} already exists with different weights (exported from {origin}); "
                          "pass another model name")  # fmt: skip
    with bentoml.models.create(tag, labels=source.labels, metadata=source.metadata) as ref:
        source.write_files(Path(ref.path))
        # Served at GET /model-card (serving/model_card.py): the version's own card, or one built from its files.
        write_card_files(Path(ref.path), source.metadata["weights_sha256"])
    return str(ref.tag)


def _registry_labels(version: ModelVersion) -> dict[str, str]:
    """Short string labels BentoML shows and filters on (``bentoml models list``)."""
    return {
        "registry_version": version.version,
        "arch": str(version.model.get("arch", "unknown")),
        "soft_attention": str(bool(version.model.get("soft_attention", False))).lower(),
    }


def _registry_metadata(registry: Registry, version: ModelVersion) -> dict[str, Any]:
    """Everything a service or a person needs to know about the exported version, as BentoML metadata."""
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
