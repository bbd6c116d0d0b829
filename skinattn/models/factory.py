"""``create_model``: build any registered architecture, with or without Soft Attention.

Architectures register a builder with ``@register_arch``; the builder receives the timm backbone (already
holding pretrained weights when asked for) and cuts it into trunk / block / tail / head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from skinattn.constants import HAM10000_CLASSES
from skinattn.errors import ModelError
from skinattn.models.config import ModelConfig
from skinattn.models.network import SoftAttentionNet
from skinattn.models.sa_block import SoftAttentionBlock


@dataclasses.dataclass(frozen=True)
class NetParts:
    trunk: nn.Module
    block: nn.Module
    tail: nn.Module
    head: nn.Module


Builder = Callable[[nn.Module, ModelConfig], NetParts]


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """A registered architecture.

    ``insertion`` says in words where SA goes; ``insertion_shape`` is the (C, h, w) of the feature map the
    SA layer sees at ``input_size``. ``small`` marks archs that train at a useful speed on a few CPU cores.
    """

    name: str
    timm_name: str
    input_size: int
    insertion: str
    insertion_shape: tuple[int, int, int]
    head: str
    builder: Builder
    small: bool = False


_REGISTRY: dict[str, ArchSpec] = {}


def register_arch(
    name: str,
    *,
    timm_name: str,
    input_size: int,
    insertion: str,
    insertion_shape: tuple[int, int, int],
    head: str,
    small: bool = False,
) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        _REGISTRY[name] = ArchSpec(name, timm_name, input_size, insertion, insertion_shape, head, builder, small)
        return builder

    return decorate


def list_archs() -> list[str]:
    _ensure_archs_registered()
    return sorted(_REGISTRY)


def arch_spec(arch: str) -> ArchSpec:
    _ensure_archs_registered()
    try:
        return _REGISTRY[arch]
    except KeyError:
        raise ModelError(f"unknown architecture {arch!r}; choose one of {sorted(_REGISTRY)}") from None


def _ensure_archs_registered() -> None:
    from skinattn.models import archs  # noqa: F401  (registers on import)


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
        pretrained: False (random init), True (timm hub weights; needs internet) or the path of a local
            timm-format weights file (.safetensors, or .pth/.bin read with ``weights_only=True``).
        **kwargs: class_names, img_size, heads, gamma_init, relu_logits, dropout, mean, std.
    """
    unknown = sorted(set(kwargs) - _CONFIG_KWARGS)
    if unknown:
        raise ModelError(f"create_model got unknown option(s) {unknown}; accepted: {sorted(_CONFIG_KWARGS)}")
    spec = arch_spec(arch)
    backbone = _create_backbone(spec, pretrained)
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
    return _assemble(spec, backbone, config)


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


# ---- helpers the builders share ------------------------------------------------------------------------


def sa_block(channels: int, config: ModelConfig) -> SoftAttentionBlock:
    return SoftAttentionBlock(
        channels, heads=config.heads, gamma_init=config.gamma_init, relu_logits=config.relu_logits, dropout=config.dropout
    )


def projection(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU taking the SA block's 2C channels back to the C the next pretrained stage expects."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def gap_head(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_classes))


@torch.no_grad()
def output_shape(config: ModelConfig, *modules: nn.Module) -> torch.Size:
    """Shape (C, h, w) after running ``modules`` in order on one image of ``config.input_size``.

    The SA block returns (features, maps); only the features go on.
    """
    x = torch.zeros(1, 3, config.input_size, config.input_size)
    for module in modules:
        was_training = module.training
        module.eval()
        x = module(x)
        module.train(was_training)
        if isinstance(x, tuple):
            x = x[0]
    return x.shape[1:]
