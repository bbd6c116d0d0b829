"""Model files: ``model.safetensors`` (weights) + ``model.json`` (the card), loaded without pickle."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from skinattn import __version__
from skinattn.errors import ModelError
from skinattn.fileio import atomic_path, write_json
from skinattn.models.calibration import CALIBRATION_KEY, read_calibration
from skinattn.models.config import ModelConfig
from skinattn.models.factory import model_from_config
from skinattn.models.network import SoftAttentionNet
from skinattn.models.pretrained import PRETRAINED_KEY

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
CARD_FORMAT = "skinattn-model"
CARD_VERSION = 1


def save_model(model: SoftAttentionNet, out_dir: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the weights and the card into ``out_dir``; each file appears complete or not at all.

    ``metadata`` (training history summary, metrics, data fingerprint...) is stored in the card as is;
    the model's calibration (its temperature, when it has one) as the card's ``calibration`` section.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # safetensors refuses tensors that share storage; contiguous copies are cheap next to a training run.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT, "arch": model.config.arch})
    card = {
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "skinattn_version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "weights": WEIGHTS_FILE,
        "config": model.config.to_dict(),
        "metadata": metadata or {},
    }
    # Optional, so cards without it (older ones, uncalibrated models) load as T = 1 and keep CARD_VERSION.
    if model.calibration is not None:
        card[CALIBRATION_KEY] = model.calibration
    # Which weights the backbone started from (create_model sets it; load_model carries it over), so the
    # card traces a model to the exact pretrained bytes, by sha256 (skinattn.models.pretrained).
    if model.pretrained_weights is not None:
        card[PRETRAINED_KEY] = model.pretrained_weights
    card["parameters"] = sum(p.numel() for p in model.parameters())
    write_json(out / CARD_FILE, card)
    return out


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """The card of a saved model, checked for format and version."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise ModelError(f"{path}: no model card here (a model folder holds {CARD_FILE} and {WEIGHTS_FILE})")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"{path}: not a skinattn model card (format is {card.get('format') if isinstance(card, dict) else None!r})")
    if card.get("card_version", 0) > CARD_VERSION:
        raise ModelError(f"{path}: card version {card['card_version']} is newer than this skinattn ({CARD_VERSION})")
    return card


def load_model(model_dir: str | Path, map_location: str | torch.device = "cpu") -> SoftAttentionNet:
    """Rebuild the network from the card and load its weights (strictly: every key must match); the card's
    calibration section, when there is one, gives the model its temperature."""
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    config = ModelConfig.from_dict(card["config"])
    calibration = read_calibration(card, source=str(model_dir / CARD_FILE))
    weights = model_dir / card.get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file missing")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{weights}: cannot read safetensors ({exc})") from exc
    model = model_from_config(config).to(map_location)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: weights do not match the card's {config.arch} ({exc})") from exc
    model.calibration = calibration
    model.pretrained_weights = card.get(PRETRAINED_KEY)
    return model.eval()
