"""``create_model``: build any registered architecture, with or without Soft Attention.

Architectures register a builder in :mod:`skinattn.models._registry` (``@register_arch``, in
:mod:`skinattn.models.archs`); the builder receives the timm backbone (already holding pretrained weights when
asked for) and cuts it into trunk / block / tail / head. The registry and the factory are separate modules,
as in timm (``_registry.py`` / ``_factory.py``), so that the architectures import the registry without
importing the factory that uses them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from skinattn.constants import HAM10000_CLASSES
from skinattn.errors import ModelError
from skinattn.models._registry import ArchSpec, arch_spec
from skinattn.models.config import ModelConfig
from skinattn.models.network import SoftAttentionNet
from skinattn.models.pretrained import PretrainedWeights, resolve_pretrained


_CONFIG_KWARGS = {"class_names", "img_size", "heads", "gamma_init", "relu_logits", "dropout", "mean", "std"}


def create_model(
    arch: str,
    num_classes: int = 7,
    soft_attention: bool = True,
    pretrained: bool | str | Path = False,
    **kwargs: Any,
) -> SoftAttentionNet:
    """Build ``arch`` with the SA head (or, with ``soft_attention=False``, the paper's baseline).

    Args:
        arch: a name from ``list_archs()``.
        num_classes: output classes; class names default to the HAM10000 codes when 7, else class_0...
        soft_attention: insert the SA block; False gives the paper's baseline of the same backbone.
        pretrained: False (random init), True (timm hub weights; needs internet), or a timm-format weights
            file (.safetensors, or .pth/.bin read with ``weights_only=True``) as a local path or an ``s3://``
            URI (fetched into a local cache, :mod:`skinattn.models.pretrained`). The model's
            ``pretrained_weights`` (source, sha256, format) records which, and ``save_model`` writes it into
            the card.
        **kwargs: class_names, img_size, heads, gamma_init, relu_logits, dropout, mean, std.
    """
    unknown = sorted(set(kwargs) - _CONFIG_KWARGS)
    if unknown:
        raise ModelError(f"create_model got unknown option(s) {unknown}; accepted: {sorted(_CONFIG_KWARGS)}")
    spec = arch_spec(arch)
    weights = resolve_pretrained(pretrained) if _is_weights_file(pretrained) else None
    try:
        backbone = _create_backbone(spec, weights.path if weights is not None else bool(pretrained))
    except ModelError as exc:
        if weights is not None and weights.source != str(weights.path.resolve()):  # fetched: name the URI too
            raise ModelError(f"{weights.source} (fetched to {exc})") from exc
        raise
    class_names = tuple(kwargs.get("class_names") or _default_class_names(num_classes))
    config = ModelConfig(
        arch=arch,
        num_classes=num_classes,
        class_names=class_names,
        soft_attention=bool(soft_attention),
        input_size=int(kwargs.get("img_size") or spec.input_size),
        mean=tuple(kwargs.get("mean") or backbone.pretrained_cfg["mean"]),
        std=tuple(kwargs.get("std") or backbone.pretrained_cfg["std"]),
        heads=int(kwargs.get("heads", 16)),
        gamma_init=float(kwargs.get("gamma_init", 0.01)),
        relu_logits=bool(kwargs.get("relu_logits", False)),
        dropout=float(kwargs.get("dropout", 0.5)),
    )
    model = _assemble(spec, backbone, config)
    model.pretrained_weights = _provenance(spec, pretrained, weights)
    return model


def _is_weights_file(pretrained: bool | str | Path | None) -> bool:
    # An empty string is "no weights": what a pipeline parameter left at its default passes.
    return isinstance(pretrained, Path) or (isinstance(pretrained, str) and pretrained != "")


def _provenance(spec: ArchSpec, pretrained: bool | str | Path | None, weights: PretrainedWeights | None) -> dict[str, Any] | None:
    """The card's ``pretrained`` section: which weights the backbone started from (None: random init)."""
    if weights is not None:
        return weights.to_card()
    if pretrained is True:
        return {"source": f"timm hub: {spec.timm_name}", "sha256": None, "format": "timm-hub"}
    return None


def model_from_config(config: ModelConfig) -> SoftAttentionNet:
    """Rebuild the (randomly initialised) network a card describes; weights are loaded separately."""
    spec = arch_spec(config.arch)
    return _assemble(spec, _create_backbone(spec, False), config)


def _assemble(spec: ArchSpec, backbone: nn.Module, config: ModelConfig) -> SoftAttentionNet:
    parts = spec.builder(backbone, config)
    return SoftAttentionNet(config, parts.trunk, parts.block, parts.tail, parts.head)


def _default_class_names(num_classes: int) -> tuple[str, ...]:
    if num_classes < 2:
        raise ModelError(f"num_classes must be at least 2, got {num_classes}")
    if num_classes == len(HAM10000_CLASSES):
        return HAM10000_CLASSES
    return tuple(f"class_{i}" for i in range(num_classes))


def _create_backbone(spec: ArchSpec, pretrained: bool | str | Path) -> nn.Module:
    if pretrained is True:
        try:
            return timm.create_model(spec.timm_name, pretrained=True)
        except Exception as exc:  # network, hub or cache problems all mean the same thing to the user
            raise ModelError(
                f"could not fetch timm's pretrained weights for {spec.timm_name} ({exc.__class__.__name__}: {exc}); "
                "without internet, pass the path of a local weights file as pretrained"
            ) from exc
    backbone = timm.create_model(spec.timm_name, pretrained=False)
    if pretrained is False or pretrained is None:
        return backbone
    load_backbone_weights(backbone, Path(pretrained))
    return backbone


def load_backbone_weights(backbone: nn.Module, path: Path) -> None:
    """Load a timm-format state dict into ``backbone`` without pickle.

    The ImageNet classifier may be missing or shaped differently (it is never used here); every other
    key must match exactly, so a file for another architecture is refused rather than half-loaded.
    """
    if not path.is_file():
        raise ModelError(f"{path}: pretrained weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
    except Exception as exc:
        raise ModelError(f"{path}: cannot read weights ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    classifier = backbone.pretrained_cfg.get("classifier", "fc")
    own = backbone.state_dict()
    is_classifier = lambda key: key.startswith(f"{classifier}.")  # noqa: E731
    reshaped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    state = {k: v for k, v in state.items() if k not in reshaped}
    result = backbone.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_classifier(k)]
    wrong_shape = [k for k in reshaped if not is_classifier(k)]
    if missing or wrong_shape or result.unexpected_keys:
        raise ModelError(
            f"{path}: weights do not fit {backbone.pretrained_cfg.get('architecture')}: "
            f"{len(missing)} missing key(s) {missing[:3]}, {len(wrong_shape)} of another shape {wrong_shape[:3]}, "
            f"{len(result.unexpected_keys)} unexpected {result.unexpected_keys[:3]}"
        )
