"""The SA head: how the authors wire Soft Attention into a backbone.

After the SA layer, their notebooks (for every backbone) max-pool 2x2 with Keras 'same' padding (ceil
mode) both the attended features f_sa and the input feature map t, concatenate them along channels as a
residual branch, then apply ReLU and Dropout(0.5) before the rest of the classifier.
"""

from __future__ import annotations

import torch
from torch import nn

from skinattn.models.soft_attention import SoftAttention


class SoftAttentionBlock(nn.Module):
    """SA layer + the authors' fusion: maxpool(f_sa) ++ maxpool(t) -> ReLU -> Dropout.

    Output: (B, 2C, ceil(H/2), ceil(W/2)) features and the (B, K, H, W) attention maps.
    """

    def __init__(
        self,
        in_channels: int,
        heads: int = 16,
        gamma_init: float = 0.01,
        relu_logits: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.attention = SoftAttention(in_channels, heads=heads, gamma_init=gamma_init, relu_logits=relu_logits)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.out_channels = 2 * in_channels

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f_sa, maps = self.attention(t)
        fused = torch.cat([self.pool(f_sa), self.pool(t)], dim=1)
        return self.drop(self.act(fused)), maps
