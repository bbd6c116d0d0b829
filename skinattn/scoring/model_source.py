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
from typing import TYPE_CHECKING, Any

from skinattn.models.calibration import NO_TEMPERATURE, describe_calibration, read_calibration
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


# The validation figures a scoring run names the model by (from the training run's card), in this order.
_VALIDATION_FIGURES = ("balanced_accuracy", "macro_auc", "val_accuracy", "val_loss")


def model_facts(card: dict[str, Any]) -> dict[str, Any]:
    """What a scoring run says about its model beyond path and hash, as flat ``model_*`` keys (for the
    summary JSON and the report's run table): architecture, Soft-Attention on/off, input size, classes,
    and, when the card holds a training run's metadata, the training and validation figures of the saved
    (best) epoch. Keys the card cannot fill are left out; nothing here raises on an older or bare card."""
    config = card.get("config") or {}
    facts: dict[str, Any] = {}
    for key, name in (("arch", "model_arch"), ("soft_attention", "model_soft_attention"),
                      ("input_size", "model_input_size")):  # fmt: skip
        if key in config:
            facts[name] = config[key]
    if config.get("class_names"):
        facts["model_classes"] = len(config["class_names"])
    training = (card.get("metadata") or {}).get("training") or {}
    if not isinstance(training, dict):
        return facts
    for key in ("train_images", "val_images", "monitor", "best_epoch", "epochs_run"):
        if training.get(key) is not None:
            facts[f"model_{key}"] = training[key]
    best = training.get("best_epoch_metrics") or {}
    for key in ("train_loss", "train_accuracy"):
        if isinstance(best.get(key), (int, float)):
            facts[f"model_{key}"] = round(float(best[key]), 4)
    validation = training.get("best_model_val_metrics") or best
    for key in _VALIDATION_FIGURES:
        value = validation.get(key) if isinstance(validation, dict) else None
        if isinstance(value, (int, float)):
            name = key if key.startswith("val_") else f"val_{key}"
            facts[f"model_{name}"] = round(float(value), 4)
    return facts


def calibration_facts(card: dict[str, Any]) -> dict[str, Any]:
    """The temperature a scoring run applies (the card's; 1 when it stores none) and where it came from, as
    ``model_temperature`` and ``model_calibration``: always present, since every scoring run applies one."""
    calibration = read_calibration(card)
    temperature = float(calibration["temperature"]) if calibration else NO_TEMPERATURE
    return {"model_temperature": temperature, "model_calibration": describe_calibration(calibration)}


def describe_model(facts: dict[str, Any]) -> str:
    """One line for people: ``resnet10t + SA, 224 px; validation balanced accuracy 0.612, macro AUC 0.901
    (best epoch 12 of 20, 4186 training images)``; only what ``facts`` holds."""
    if "model_arch" not in facts:
        return ""
    text = facts["model_arch"]
    if "model_soft_attention" in facts:
        text += " + SA" if facts["model_soft_attention"] else " (no SA)"
    if "model_input_size" in facts:
        text += f", {facts['model_input_size']} px"
    figures = [f"{label} {facts[key]:.3f}" for key, label in (("model_val_balanced_accuracy", "balanced accuracy"),
                                                              ("model_val_macro_auc", "macro AUC"))
               if key in facts]  # fmt: skip
    if figures:
        text += "; validation " + ", ".join(figures)
    run = []
    if "model_best_epoch" in facts:
        run.append(f"best epoch {facts['model_best_epoch']}"
                   + (f" of {facts['model_epochs_run']}" if "model_epochs_run" in facts else ""))
    if "model_train_images" in facts:
        run.append(f"{facts['model_train_images']} training images")
    text += f" ({', '.join(run)})" if run else ""
    if "model_temperature" in facts:
        text += f"; probabilities at temperature {facts['model_temperature']:.4g}"
    return text
