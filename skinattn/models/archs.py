"""The architectures of the paper (Sec. 3.3), cut where the authors insert Soft Attention.

Each builder takes a timm backbone and returns trunk / block / tail / head. With SA, the block is the
SA head (``SoftAttentionBlock``); without it (the paper's baseline) the block is what the backbone had
there. docs/models.md has the table of insertion points and where this departs from the notebooks.
"""

from __future__ import annotations

import torch
from torch import nn

from skinattn.models.config import ModelConfig
from skinattn.models._registry import NetParts, register_arch
from skinattn.models.parts import gap_head, output_shape, projection, sa_block


def _resnet_stem(backbone: nn.Module) -> list[nn.Module]:
    return [backbone.conv1, backbone.bn1, backbone.act1, backbone.maxpool]


def _resnet_last_stage(backbone: nn.Module, config: ModelConfig) -> NetParts:
    """SA on the last stage's output (ResNet50: 7x7x2048 at 224), then GAP -> Linear."""
    trunk = nn.Sequential(*_resnet_stem(backbone), backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4)
    channels = backbone.num_features
    if config.soft_attention:
        block = sa_block(channels, config)
        return NetParts(trunk, block, nn.Identity(), gap_head(block.out_channels, config.num_classes))
    return NetParts(trunk, nn.Identity(), nn.Identity(), gap_head(channels, config.num_classes))


@register_arch(
    "resnet50",
    timm_name="resnet50",
    input_size=224,
    insertion="output of the last stage (conv5_x)",
    insertion_shape=(2048, 7, 7),
    head="GAP -> Linear",
)
def resnet50(backbone: nn.Module, config: ModelConfig) -> NetParts:
    return _resnet_last_stage(backbone, config)


@register_arch(
    "resnet18",
    timm_name="resnet18",
    input_size=224,
    insertion="output of the last stage (as resnet50)",
    insertion_shape=(512, 7, 7),
    head="GAP -> Linear",
    small=True,
)
def resnet18(backbone: nn.Module, config: ModelConfig) -> NetParts:
    return _resnet_last_stage(backbone, config)


@register_arch(
    "resnet10t",
    timm_name="resnet10t",
    input_size=224,
    insertion="output of the last stage (as resnet50)",
    insertion_shape=(512, 7, 7),
    head="GAP -> Linear",
    small=True,
)
def resnet10t(backbone: nn.Module, config: ModelConfig) -> NetParts:
    return _resnet_last_stage(backbone, config)


@register_arch(
    "resnet34",
    timm_name="resnet34",
    input_size=224,
    insertion="after the 3rd block group (conv3_x = timm layer2); layer3 and layer4 kept",
    insertion_shape=(128, 28, 28),
    head="layer3 -> layer4 -> GAP -> Linear",
)
def resnet34(backbone: nn.Module, config: ModelConfig) -> NetParts:
    trunk = nn.Sequential(*_resnet_stem(backbone), backbone.layer1, backbone.layer2)
    later_stages = [backbone.layer3, backbone.layer4]
    head = gap_head(backbone.num_features, config.num_classes)
    if config.soft_attention:
        channels = backbone.layer2[-1].conv2.out_channels
        block = sa_block(channels, config)
        # The later stages run at half resolution, as in the notebooks; the 1x1 projection keeps the
        # pretrained layer3 usable (the notebooks' random-init layer3 took the 2C channels directly).
        tail = nn.Sequential(projection(block.out_channels, channels), *later_stages)
        return NetParts(trunk, block, tail, head)
    return NetParts(trunk, nn.Identity(), nn.Sequential(*later_stages), head)


class _VggClassifier(nn.Sequential):
    """Flatten -> 4096 -> 4096 -> classes, with ReLU and Dropout(0.5), as the authors' VGG16."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 4096, dropout: float = 0.5):
        super().__init__(
            nn.Flatten(1),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


@register_arch(
    "vgg16",
    timm_name="vgg16_bn",
    input_size=224,
    insertion="after conv block 4, replacing its max-pool; block 5 kept",
    insertion_shape=(512, 28, 28),
    head="block 5 -> MaxPool 4x4 -> Flatten -> 4096 -> 4096 -> Linear",
)
def vgg16(backbone: nn.Module, config: ModelConfig) -> NetParts:
    features = backbone.features
    pool_indices = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    block4_pool, block5_pool = pool_indices[3], pool_indices[4]
    trunk = features[:block4_pool]
    block5_convs = features[block4_pool + 1 : block5_pool]
    final_pool = nn.MaxPool2d(kernel_size=4, stride=4)
    channels = 512
    if config.soft_attention:
        block = sa_block(channels, config)
        tail = nn.Sequential(projection(block.out_channels, channels), *block5_convs, final_pool)
    else:
        block = features[block4_pool]
        tail = nn.Sequential(*block5_convs, final_pool)
    flat = output_shape(config, trunk, block, tail).numel()
    return NetParts(trunk, block, tail, _VggClassifier(flat, config.num_classes, dropout=config.dropout))


class _DenseNetTrunk(nn.Module):
    """DenseNet up to the bottleneck (BN-ReLU-1x1 conv-BN-ReLU) of one dense layer of the last block.

    The layers after it are dropped, as in the notebooks (SA input 7x7x128 inside dense layer 29 of 32).
    """

    def __init__(self, backbone: nn.Module, layer_index: int):
        super().__init__()
        children = dict(backbone.features.named_children())
        self.stem = nn.Sequential(*[m for name, m in children.items() if name not in ("denseblock4", "norm5")])
        layers = list(children["denseblock4"].values())
        self.layers = nn.ModuleList(layers[: layer_index - 1])
        target = layers[layer_index - 1]
        self.bottleneck = nn.Sequential(target.norm1, target.conv1, target.norm2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(features))
        return self.bottleneck(torch.cat(features, dim=1))


@register_arch(
    "densenet201",
    timm_name="densenet201",
    input_size=224,
    insertion="bottleneck of dense layer 29 of the 4th dense block (layers 30-32 dropped)",
    insertion_shape=(128, 7, 7),
    head="Flatten -> Linear",
)
def densenet201(backbone: nn.Module, config: ModelConfig) -> NetParts:
    trunk = _DenseNetTrunk(backbone, layer_index=29)
    block = sa_block(128, config) if config.soft_attention else nn.Identity()
    flat = output_shape(config, trunk, block).numel()
    return NetParts(trunk, block, nn.Identity(), nn.Sequential(nn.Flatten(1), nn.Linear(flat, config.num_classes)))


@register_arch(
    "inception_resnet_v2",
    timm_name="inception_resnet_v2",
    input_size=299,
    insertion="1x1 branch (192 ch) of the last Inception-ResNet-C block; the block's other layers and conv_7b dropped",
    insertion_shape=(192, 8, 8),
    head="Flatten -> Linear",
)
def inception_resnet_v2(backbone: nn.Module, config: ModelConfig) -> NetParts:
    stem_names = [
        "conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "maxpool_5a",
        "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a", "repeat_2",
    ]  # fmt: skip
    trunk = nn.Sequential(*[getattr(backbone, name) for name in stem_names], backbone.block8.branch0)
    if config.soft_attention:
        block = sa_block(192, config)
    else:
        # The notebooks' baseline: the same layer -> ReLU -> Dropout -> Flatten -> Dense.
        block = nn.Sequential(nn.ReLU(), nn.Dropout(config.dropout))
    flat = output_shape(config, trunk, block).numel()
    return NetParts(trunk, block, nn.Identity(), nn.Sequential(nn.Flatten(1), nn.Linear(flat, config.num_classes)))
