"""Which model a scoring run uses: a model folder, or a version in the registry (``v3``, ``latest``, ``production``).

Two stages, so that a sharded run can fix its model before any shard starts:

- :func:`pin_model` decides what a spec names NOW and downloads nothing: a model folder as given, or the
  concrete registry version an alias (``production``, ``latest``) points to;
- :func:`resolve_model` pins and then fetches, giving the folder the scorer loads.

A pipeline pins once and passes the pinned name (``v7``) to every shard, so that a promotion while the
shards run cannot give two shards two different models (the merge would refuse them).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE, read_card

if TYPE_CHECKING:
    from skinattn.registry import ModelVersion, Registry


@dataclasses.dataclass(frozen=True)
class PinnedModel:
    """What a model spec names at the moment it was pinned: a model folder, or one registry version."""

    folder: Path | None  # a model folder (anything holding model.json), used in place
    registry: Registry | None = None  # else the registry...
    record: ModelVersion | None = None  # ...and the version the spec named when it was pinned

    @property
    def name(self) -> str:
        """A spec that names this same model later: the folder, or the concrete version (``v7``)."""
        if self.record is None:
            return str(self.folder)
        return self.record.version


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    directory: Path  # a folder load_model reads
    version: str  # written beside every prediction: the registry version, or <folder>@<weights digest>
    origin: str  # where it came from, for the summary


def _weights_digest(directory: Path) -> str:
    with (directory / read_card(directory).get("weights", WEIGHTS_FILE)).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:12]


def pin_model(spec: str, registry_root: str | None = None) -> PinnedModel:
    """A model folder (anything holding ``model.json``) is used in place; any other ``spec`` is a registry
    version (``v3``, ``3``) or alias (``latest``, ``production``), looked up now in the registry at
    ``registry_root`` (default ``$SKINATTN_REGISTRY``, else ``./registry``). Nothing is downloaded.
    """
    path = Path(spec)
    if (path / CARD_FILE).is_file():
        return PinnedModel(folder=path)
    from skinattn.registry import Registry  # the registry is only needed (and imported) for registry specs

    registry = Registry(registry_root)
    return PinnedModel(folder=None, registry=registry, record=registry.get(spec))


def resolve_model(spec: str, registry_root: str | None = None) -> ResolvedModel:
    """The model a scoring run loads: ``spec`` pinned (:func:`pin_model`); a registry version is fetched,
    with digests checked, into the local model cache (:meth:`skinattn.registry.Registry.fetch`), where the
    next run finds it.
    """
    pinned = pin_model(spec, registry_root)
    if pinned.folder is not None:
        folder = pinned.folder
        return ResolvedModel(folder, f"{folder.resolve().name}@{_weights_digest(folder)}", str(folder))
    registry, record = pinned.registry, pinned.record
    assert registry is not None and record is not None  # pin_model sets both for a registry spec
    return ResolvedModel(registry.fetch(record), record.version, f"{registry.uri} {spec} = {record.version}")
