"""The registry of architectures: what ``@register_arch`` records and ``arch_spec`` / ``list_archs`` read.

The builders register when :mod:`skinattn.models.archs` is imported, which ``skinattn/models/__init__.py``
does, so the registry is complete whenever the package is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn

from skinattn.errors import ModelError
from skinattn.models.config import ModelConfig


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
    return sorted(_REGISTRY)


def arch_spec(arch: str) -> ArchSpec:
    try:
        return _REGISTRY[arch]
    except KeyError:
        raise ModelError(f"unknown architecture {arch!r}; choose one of {sorted(_REGISTRY)}") from None
