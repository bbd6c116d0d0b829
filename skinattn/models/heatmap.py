"""Attention maps as pictures: the input-sized heat map of alpha and its overlay on the image (paper Fig. 7)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def attention_heatmap(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sum the K maps into alpha, upsample to ``size`` (H, W) and scale each image's map to [0, 1].

    Args:
        maps: (B, K, h, w) attention maps from ``forward_with_attention``.
        size: output (height, width), usually the input image's.
    Returns:
        (B, H, W) float tensor in [0, 1]; a flat map becomes all zeros.
    """
    if maps.dim() != 4:
        raise ValueError(f"expected maps of shape (B, K, h, w), got {tuple(maps.shape)}")
    alpha = maps.detach().float().sum(dim=1, keepdim=True)
    heat = F.interpolate(alpha, size=size, mode="bilinear", align_corners=False).squeeze(1)
    low = heat.amin(dim=(1, 2), keepdim=True)
    span = heat.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (heat - low) / span.clamp_min(1e-12), torch.zeros_like(heat))


def overlay(image: Image.Image, heat: np.ndarray | torch.Tensor, opacity: float = 0.45, cmap: str = "jet") -> Image.Image:
    """Blend a [0, 1] heat map (resized to the image if needed) over an RGB image with a colour map."""
    from matplotlib import colormaps

    heat_array = heat.detach().cpu().numpy() if isinstance(heat, torch.Tensor) else np.asarray(heat)
    rgb = image.convert("RGB")
    if heat_array.shape != (rgb.height, rgb.width):
        resized = Image.fromarray((np.clip(heat_array, 0, 1) * 255).astype(np.uint8)).resize(rgb.size, Image.BILINEAR)
        heat_array = np.asarray(resized, dtype=np.float32) / 255.0
    colored = (colormaps[cmap](np.clip(heat_array, 0, 1))[..., :3] * 255).astype(np.uint8)
    return Image.blend(rgb, Image.fromarray(colored), opacity)
