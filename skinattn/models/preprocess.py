"""Turning an image into the tensor a model expects, from the facts in its config."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2

from skinattn.models.config import ModelConfig


def eval_transform(config: ModelConfig) -> v2.Compose:
    """Resize a PIL image to the model's square input, scale to [0, 1], normalise with the model's mean/std.

    The resize is Pillow's bicubic on the RGB image, the same as the training cache
    (``skinattn.data.cache.resize_image``), so a model sees identical pixels in training and inference.
    """
    return v2.Compose(
        [
            v2.Resize((config.input_size, config.input_size), interpolation=v2.InterpolationMode.BICUBIC),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ]
    )


def preprocess_images(images: list[Image.Image], config: ModelConfig) -> torch.Tensor:
    """A (B, 3, S, S) batch from RGB PIL images."""
    transform = eval_transform(config)
    return torch.stack([transform(image.convert("RGB")) for image in images])
