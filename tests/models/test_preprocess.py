"""Inference preprocessing matches what training saw."""

from __future__ import annotations

import numpy as np
from PIL import Image

from skinattn.data.cache import resize_image
from skinattn.models import create_model, eval_transform


def test_inference_resize_equals_the_training_cache_resize():
    config = create_model("resnet10t", img_size=40).config
    resize, to_image = eval_transform(config).transforms[:2]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    assert np.array_equal(to_image(resize(image)).permute(1, 2, 0).numpy(), resize_image(image, 40))


def test_eval_transform_normalises_with_the_model_stats():
    config = create_model("resnet10t", img_size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).config
    tensor = eval_transform(config)(Image.new("RGB", (30, 20), (255, 0, 128)))
    assert tensor.shape == (3, 16, 16)
    assert np.allclose(tensor[0].numpy(), 1.0) and np.allclose(tensor[1].numpy(), -1.0)
