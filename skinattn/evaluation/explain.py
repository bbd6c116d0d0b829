"""Why a model predicted what it did: its Soft-Attention map (paper Fig. 7) and Grad-CAM (paper Fig. 9).

Grad-CAM comes from the maintained ``grad-cam`` package (``pytorch_grad_cam``) rather than a hand-written
copy. Its target layer is chosen so that an SA model and its baseline are explained at the same place:

- when the network keeps backbone stages after the SA insertion point (``model.tail`` is not empty:
  resnet34, vgg16), the output of those stages, i.e. the last convolutional feature map before the head;
- otherwise (SA on the last feature map: resnet10t/18/50, densenet201, inception_resnet_v2), the output
  of ``model.trunk``: the feature map the SA layer sees, which is also the baseline's last feature map.
  Gradients reach it through both the attention branch and the residual branch of the SA block.

A baseline (``soft_attention=False``) has no attention map; it gets Grad-CAM only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from skinattn.errors import DataError
from skinattn.models import SoftAttentionNet, attention_heatmap, overlay, preprocess_images
from skinattn.evaluation.predict import resolve_device

DISPLAY_SIDE = 256  # px: the longer side of images shown in reports and panels


@dataclasses.dataclass
class Explanation:
    """One image explained: heat maps are (S, S) arrays in [0, 1] at the model's input size."""

    image: Image.Image
    probabilities: dict[str, float]
    predicted: str
    target_class: str
    gradcam: np.ndarray
    attention: np.ndarray | None = None

    def attention_overlay(self, image: Image.Image | None = None) -> Image.Image | None:
        return None if self.attention is None else overlay(image or self.image, self.attention)

    def gradcam_overlay(self, image: Image.Image | None = None) -> Image.Image:
        return overlay(image or self.image, self.gradcam)


def gradcam_target_layer(model: SoftAttentionNet) -> tuple[nn.Module, str]:
    """The module whose output Grad-CAM weighs, and a sentence saying which it is (see the module docstring)."""
    tail_is_empty = isinstance(model.tail, nn.Identity) or not any(True for _ in model.tail.parameters())
    if tail_is_empty:
        return model.trunk, "trunk output: the feature map the SA layer sees (the last feature map before the head)"
    return model.tail, "tail output: the last backbone stage after the SA insertion point (the last feature map before the head)"


def display_image(image: Image.Image, max_side: int = DISPLAY_SIDE) -> Image.Image:
    """A copy no larger than ``max_side`` on its longer side, aspect kept."""
    shown = image.convert("RGB")
    scale = max_side / max(shown.size)
    if scale < 1:
        shown = shown.resize((max(1, round(shown.width * scale)), max(1, round(shown.height * scale))), Image.BILINEAR)
    return shown


def side_by_side(panels: Sequence[Image.Image], gap: int = 4) -> Image.Image:
    """Images of equal height placed left to right on a white background."""
    height = max(p.height for p in panels)
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + gap
    return canvas


class Explainer:
    """Attention maps and Grad-CAM of one model, for batches of PIL images."""

    def __init__(self, model: SoftAttentionNet, device: str | torch.device | None = "auto"):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.target_layer, self.target_layer_description = gradcam_target_layer(self.model)
        self.class_names = list(self.model.config.class_names)

    def explain(self, images: Sequence[Image.Image], target_class: str | None = None) -> list[Explanation]:
        """Explain each image; Grad-CAM targets ``target_class`` or, by default, the predicted class."""
        if not images:
            return []
        if target_class is not None and target_class not in self.class_names:
            raise DataError(f"target class {target_class!r} is not one of the model's classes {self.class_names}")
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        size = self.model.config.input_size
        batch = preprocess_images(list(images), self.model.config).to(self.device)
        with torch.inference_mode():
            if self.model.has_attention:
                logits, maps = self.model.forward_with_attention(batch)
                attention = attention_heatmap(maps, (size, size)).cpu().numpy()
            else:
                logits, attention = self.model(batch), None
            probs = self.model.probabilities(logits).cpu().numpy()
        predicted = probs.argmax(axis=1)
        targets = predicted if target_class is None else np.full(len(images), self.class_names.index(target_class))
        # Gradients are needed here, so this pass runs outside inference mode; the package hooks the
        # target layer for the duration of the ``with`` block only.
        with GradCAM(model=self.model, target_layers=[self.target_layer]) as cam:
            heat = cam(input_tensor=batch.clone(), targets=[ClassifierOutputTarget(int(k)) for k in targets])
        self.model.zero_grad(set_to_none=True)
        results = []
        for i, image in enumerate(images):
            results.append(
                Explanation(
                    image=image.convert("RGB"),
                    probabilities={name: float(p) for name, p in zip(self.class_names, probs[i])},
                    predicted=self.class_names[int(predicted[i])],
                    target_class=self.class_names[int(targets[i])],
                    gradcam=np.clip(np.nan_to_num(heat[i].astype(np.float32)), 0.0, 1.0),
                    attention=None if attention is None else attention[i],
                )
            )
        return results
