"""Which model a scoring run uses: a model folder, or a version in the registry (``v3``, ``latest``, ``production``)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE, read_card


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    directory: Path  # a folder load_model reads
    version: str  # written beside every prediction: the registry version, or <folder>@<weights digest>
    origin: str  # where it came from, for the summary


def _weights_digest(directory: Path) -> str:
    with (directory / read_card(directory).get("weights", WEIGHTS_FILE)).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:12]


def resolve_model(spec: str, registry_root: str | None = None) -> ResolvedModel:
    """A model folder (anything holding ``model.json``) is used in place; any other ``spec`` is a registry
    version (``v3``, ``3``, ``latest``, ``production``), fetched with digests checked into the local model
    cache (:meth:`skinattn.registry.Registry.fetch`), where the next run finds it.
    """
    path = Path(spec)
    if (path / CARD_FILE).is_file():
        return ResolvedModel(path, f"{path.resolve().name}@{_weights_digest(path)}", str(path))
    from skinattn.registry import Registry  # the registry is only needed (and imported) for registry specs

    registry = Registry(registry_root)
    record = registry.get(spec)
    return ResolvedModel(registry.fetch(record), record.version, f"{registry.uri} {spec} = {record.version}")
