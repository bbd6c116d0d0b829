"""How an evaluated model and its test split were made, as recorded in the ``run`` section of metrics.json.

Comparisons across evaluations read these instead of trusting the caller: the ablation pairs the two arms
of an architecture by training seed, and names the split protocol that produced its test set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skinattn.data.schema import MANIFEST_JSON

# Human-readable names of skinattn.data.splits.PROTOCOLS, used in report headings.
PROTOCOL_DESCRIPTIONS: dict[str, str] = {
    "grouped": "grouped by lesion (stratified; no lesion in two splits)",
    "paper": (
        "paper protocol (Datta et al.'s test draw: only lesions with a single image, stratified; a narrower, "
        "easier test pool than the whole collection. Their leak, using that test set for early stopping and "
        "checkpoint choice, is not reproduced here)"
    ),
}

# The same, short enough for a table heading.
PROTOCOL_HEADINGS: dict[str, str] = {
    "grouped": "test split grouped by lesion",
    "paper": "paper protocol: test drawn only from single-image lesions",
}


def card_training_seed(card: dict[str, Any]) -> int | None:
    """The ``train.seed`` a model was trained with (its card's training config), or None when not recorded."""
    seed = (((card.get("metadata") or {}).get("config") or {}).get("train") or {}).get("seed")
    return int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None


def split_protocol(manifest: str | Path) -> str | None:
    """The split protocol ``prepare`` recorded in a prepared manifest's JSON (``extra.prepare.split``), or
    None for a manifest that was not made by ``prepare`` (or whose description is unreadable: the
    evaluation itself has already read the manifest, this only labels its report)."""
    path = Path(manifest)
    json_path = (path / MANIFEST_JSON) if path.is_dir() else path.with_name(MANIFEST_JSON)
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(description, dict):
        return None
    protocol = (((description.get("extra") or {}).get("prepare") or {}).get("split") or {}).get("protocol")
    return str(protocol) if protocol else None


def describe_protocol(protocol: str | None) -> str:
    """The heading text of a split protocol (``None``: not recorded, e.g. evaluations made before it was)."""
    if protocol is None:
        return "split protocol not recorded"
    return PROTOCOL_DESCRIPTIONS.get(protocol, f"split protocol {protocol!r}")


def protocol_heading(protocol: str | None) -> str:
    """The short name of a split protocol for table headings (:data:`PROTOCOL_HEADINGS`)."""
    if protocol is None:
        return "split protocol not recorded"
    return PROTOCOL_HEADINGS.get(protocol, f"split protocol {protocol!r}")


def run_provenance(card: dict[str, Any], manifest: str | Path) -> dict[str, Any]:
    """The keys evaluate adds to metrics.json's ``run`` section: ``training_seed`` and ``split_protocol``."""
    return {"training_seed": card_training_seed(card), "split_protocol": split_protocol(manifest)}
