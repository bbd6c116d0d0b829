"""Classifying images with a saved model: the one code path that ``predict``, serving and scoring share."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from PIL import Image

from skinattn.models import SoftAttentionNet, attention_heatmap, load_model, preprocess_images, read_card


@dataclasses.dataclass
class Prediction:
    probabilities: dict[str, float]
    top_class: str
    heatmap: torch.Tensor | None = None  # (S, S) in [0, 1] at the model's input size, when asked for


class Predictor:
    """A model loaded once from its folder, ready to classify batches of PIL images."""

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu"):
        self.model_dir = Path(model_dir)
        self.card = read_card(self.model_dir)
        self.device = torch.device(device)
        self.model: SoftAttentionNet = load_model(self.model_dir, map_location=self.device)
        self.config = self.model.config

    @torch.inference_mode()
    def predict(self, images: list[Image.Image], with_attention: bool = False) -> list[Prediction]:
        batch = preprocess_images(images, self.config).to(self.device)
        heat = None
        if with_attention and self.model.has_attention:
            logits, maps = self.model.forward_with_attention(batch)
            heat = attention_heatmap(maps, (self.config.input_size, self.config.input_size)).cpu()
        else:
            logits = self.model(batch)
        probs = self.model.probabilities(logits).cpu()  # with the model's temperature, as everywhere
        names = self.config.class_names
        results = []
        for i, row in enumerate(probs):
            results.append(
                Prediction(
                    probabilities={name: float(p) for name, p in zip(names, row)},
                    top_class=names[int(row.argmax())],
                    heatmap=None if heat is None else heat[i],
                )
            )
        return results
