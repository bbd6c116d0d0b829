"""Attention maps turned into input-sized heat maps and overlays."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from skinattn.models import attention_heatmap, overlay


def test_heatmap_is_input_sized_scaled_and_peaks_where_attention_is():
    maps = torch.full((2, 16, 7, 7), 1e-3)
    maps[0, :, 1, 5] = 1.0  # every head of image 0 looks at row 1, column 5
    maps[1, :3, 6, 0] = 1.0  # three heads of image 1 look at the bottom-left corner
    heat = attention_heatmap(maps, (224, 224))
    assert heat.shape == (2, 224, 224)
    assert heat.min() >= 0 and heat.max() <= 1
    for i, (row, col) in enumerate([(1, 5), (6, 0)]):
        peak_y, peak_x = np.unravel_index(int(heat[i].argmax()), (224, 224))
        assert peak_y // 32 == row and peak_x // 32 == col


def test_flat_maps_give_zeros_not_nan():
    heat = attention_heatmap(torch.full((1, 16, 4, 4), 1 / 16), (8, 8))
    assert torch.equal(heat, torch.zeros(1, 8, 8))


def test_overlay_keeps_image_size_and_colours_the_hot_spot():
    image = Image.new("RGB", (60, 40), (128, 128, 128))
    heat = np.zeros((20, 30), dtype=np.float32)
    heat[:10, :15] = 1.0  # top-left quadrant hot
    out = overlay(image, heat, opacity=0.5)
    assert out.size == (60, 40) and out.mode == "RGB"
    hot, cold = np.asarray(out)[5, 5].astype(int), np.asarray(out)[35, 55].astype(int)
    assert hot[0] > hot[2]  # jet: hot is red
    assert cold[2] > cold[0]  # cold is blue
