"""The evaluation's model card: ``MODEL_CARD.md`` and ``model_card.json`` beside ``report.html``.

Built from the model's ``model.json`` and the ``metrics.json`` the evaluation has just written (so every
section another step adds to metrics.json, such as ``calibration`` or ``external``, reaches the card), with the
weights' sha256 so the card names the exact model it describes. See :mod:`skinattn.model_card`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from skinattn.fileio import atomic_open
from skinattn.model_card import CARD_JSON, CARD_MARKDOWN, build_card, card_json, render_markdown
from skinattn.models.weights import WEIGHTS_FILE, read_card


def weights_sha256(model_dir: str | Path, card: dict[str, Any]) -> str:
    with (Path(model_dir) / str(card.get("weights", WEIGHTS_FILE))).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_model_card(model_dir: str | Path, out: str | Path, metrics_file: str = "metrics.json") -> str:
    """Write ``MODEL_CARD.md`` and ``model_card.json`` into ``out`` from the model and ``out/metrics_file``;
    return the Markdown (the report shows it)."""
    out = Path(out)
    model_json = read_card(model_dir)
    metrics = json.loads((out / metrics_file).read_text(encoding="utf-8"))
    card = build_card(model_json, metrics, weights_sha256=weights_sha256(model_dir, model_json))
    markdown = render_markdown(card)
    with atomic_open(out / CARD_MARKDOWN) as handle:
        handle.write(markdown)
    with atomic_open(out / CARD_JSON) as handle:
        handle.write(card_json(card))
    return markdown
