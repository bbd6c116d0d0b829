"""Small modules and measurements the architecture builders (:mod:`skinattn.models.archs`) share."""

from __future__ import annotations

import torch
from torch import nn

from skinattn.models.config import ModelConfig
from skinattn.models.sa_block import SoftAttentionBlock


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
