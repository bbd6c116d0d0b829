"""Soft Attention (SA) layer.

Paper: "Soft-Attention Improves Skin Cancer Classification Performance", Datta, Shaikh, Srihari and Gao,
MICCAI iMIMIC workshop 2021 (arXiv:2105.03358), Eq. (1):

    f_sa = gamma * t * sum_{k=1..K} softmax(W_k * t)

The paper's "3D convolution with kernel depth d and stride d" over an h x w x d tensor is one 3x3 'same'
convolution from d channels to K logit maps. The softmax runs over the h*w positions of each map
separately, so every map sums to 1 and their sum alpha has mean K/(h*w). gamma is a learnable scalar
initialised at 0.01 so that the network starts close to its plain backbone and learns how much attention
it needs.

The authors' Keras notebooks differ (see docs/models.md): they have no gamma and put a ReLU between the
convolution and the softmax. The ReLU is available as ``relu_logits=True``; the default follows the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftAttention(nn.Module):
    """Soft Attention of Datta et al. (2021), Eq. (1).

    Args:
        in_channels: channels C of the feature tensor t.
        heads: number K of attention maps (the paper uses 16).
        gamma_init: initial value of the learnable output scale gamma (the paper uses 0.01).
        relu_logits: apply a ReLU to the logits before the softmax, as the authors' code does.

    ``forward(t)`` returns ``(f_sa, maps)``: f_sa has t's shape (B, C, H, W); maps is (B, K, H, W) and
    each map sums to 1 over its H*W positions.
    """

    def __init__(self, in_channels: int, heads: int = 16, gamma_init: float = 0.01, relu_logits: bool = False):
        super().__init__()
        if in_channels < 1 or heads < 1:
            raise ValueError(f"in_channels and heads must be positive, got {in_channels} and {heads}")
        self.in_channels = in_channels
        self.heads = heads
        self.relu_logits = relu_logits
        self.conv = nn.Conv2d(in_channels, heads, kernel_size=3, padding=1, bias=True)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def attention_maps(self, t: torch.Tensor) -> torch.Tensor:
        """The K spatial softmax maps, (B, K, H, W), each summing to 1."""
        logits = self.conv(t)
        if self.relu_logits:
            logits = F.relu(logits)
        b, k, h, w = logits.shape
        # Softmax in at least float32, also under autocast: in bf16 a 28x28 softmax loses its small weights.
        dtype = torch.promote_types(logits.dtype, torch.float32)
        return logits.flatten(2).softmax(dim=-1, dtype=dtype).view(b, k, h, w).to(t.dtype)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.attention_maps(t)
        alpha = maps.sum(dim=1, keepdim=True)
        return self.gamma * alpha * t, maps

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, heads={self.heads}, relu_logits={self.relu_logits}"
