"""The classifier every architecture is assembled into: trunk -> (SA block) -> tail -> head."""

from __future__ import annotations

import torch
from torch import nn

from skinattn.errors import ModelError
from skinattn.models.config import ModelConfig


class SoftAttentionNet(nn.Module):
    """A backbone split where Soft Attention goes in.

    Parts:
        trunk: image -> t, the feature map the SA layer sees (B, C, h, w).
        block: ``SoftAttentionBlock`` (returns features and maps), or the baseline's plain module.
        tail: the backbone stages kept after the insertion point (identity when none are kept).
        head: features -> logits (pooling / flatten and the classifier).
    """

    def __init__(self, config: ModelConfig, trunk: nn.Module, block: nn.Module, tail: nn.Module, head: nn.Module):
        super().__init__()
        self.config = config
        self.trunk = trunk
        self.block = block
        self.tail = tail
        self.head = head

    @property
    def has_attention(self) -> bool:
        return self.config.soft_attention

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = self.trunk(x)
        if self.has_attention:
            features, maps = self.block(t)
        else:
            features, maps = self.block(t), None
        return self.tail(features), maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, _ = self._features(x)
        return self.head(features)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, num_classes) and the SA maps (B, K, h, w) of the same forward pass."""
        if not self.has_attention:
            raise ModelError(
                f"{self.config.arch} was built with soft_attention=False: it has no attention maps "
                "(use a gradient-based explanation such as Grad-CAM instead)"
            )
        features, maps = self._features(x)
        assert maps is not None
        return self.head(features), maps

    @property
    def attention_layer(self) -> nn.Module | None:
        """The SA layer itself, or None for a baseline."""
        return self.block.attention if self.has_attention else None
