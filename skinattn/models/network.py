"""The classifier every architecture is assembled into: trunk -> (SA block) -> tail -> head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from skinattn.errors import ModelError
from skinattn.models.calibration import NO_TEMPERATURE, calibrated_probabilities
from skinattn.models.config import ModelConfig


class SoftAttentionNet(nn.Module):
    """A backbone split where Soft Attention goes in.

    Parts:
        trunk: image -> t, the feature map the SA layer sees (B, C, h, w).
        block: ``SoftAttentionBlock`` (returns features and maps), or the baseline's plain module.
        tail: the backbone stages kept after the insertion point (identity when none are kept).
        head: features -> logits (pooling / flatten and the classifier).

    ``calibration`` is the card's calibration section (``temperature`` and how it was fitted; see
    :mod:`skinattn.models.calibration`), or None: :meth:`probabilities` applies its temperature, so every
    path that turns this model's logits into probabilities applies the same one.
    """

    def __init__(self, config: ModelConfig, trunk: nn.Module, block: nn.Module, tail: nn.Module, head: nn.Module):
        super().__init__()
        self.config = config
        self.trunk = trunk
        self.block = block
        self.tail = tail
        self.head = head
        self.calibration: dict[str, Any] | None = None  # set by load_model from the card; saved by save_model
        # The card's ``pretrained`` section (source, sha256, format): set by create_model, carried over by
        # load_model, saved by save_model; None for random initialisation.
        self.pretrained_weights: dict[str, Any] | None = None

    @property
    def has_attention(self) -> bool:
        return self.config.soft_attention

    @property
    def temperature(self) -> float:
        """The temperature :meth:`probabilities` divides the logits by (1 when the model is uncalibrated)."""
        return float(self.calibration["temperature"]) if self.calibration else NO_TEMPERATURE

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities of this model's ``logits``: ``softmax(logits / temperature)``."""
        return calibrated_probabilities(logits, self.temperature)

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
