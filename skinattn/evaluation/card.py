"""The evaluation's model card: ``MODEL_CARD.md`` and ``model_card.json`` beside ``report.html``.

Built from the model's ``model.json`` and the ``metrics.json`` the evaluation has just written (so every
section another step adds to metrics.json, such as ``calibration`` or ``external``, reaches the card), with the
weights' sha256 so the card names the exact model it describes. See :mod:`skinattn.model_card`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skinattn.fileio import atomic_open, sha256_file
from skinattn.model_card import CARD_MARKDOWN, card_files
from skinattn.models.weights import WEIGHTS_FILE, read_card


def weights_sha256(model_dir: str | Path, card: dict[str, Any]) -> str:
    return sha256_file(Path(model_dir) / str(card.get("weights", WEIGHTS_FILE)))


def write_model_card(model_dir: str | Path, out: str | Path, metrics_file: str = "metrics.json") -> str:
    """Write ``MODEL_CARD.md`` and ``model_card.json`` into ``out`` from the model and ``out/metrics_file``;
    return the Markdown (the report shows it)."""
    out = Path(out)
    model_json = read_card(model_dir)
    metrics = json.loads((out / metrics_file).read_text(encoding="utf-8"))
    files = card_files(model_json, metrics, weights_sha256=weights_sha256(model_dir, model_json))
    for name, text in files.items():
        with atomic_open(out / name) as handle:
            handle.write(text)
    return files[CARD_MARKDOWN]
