"""The model side of the service, free of BentoML: preparing one image, classifying a batch, drawing maps.

The work is split where requests are batched, and each half lives in its own BentoML service (process):

- :class:`Preprocessor` (the API service, once per request, in parallel across requests) reads only the
  model's card, resizes a decoded image to the model's square input and returns its uint8 pixels as a
  ``(1, 3, S, S)`` numpy array: the batchable API's input, which BentoML concatenates along axis 0.
- :class:`ServingModel` (the model service, once per batch) holds the weights; it scales and normalises the
  stacked ``(N, 3, S, S)`` pixels and makes one forward pass, returning one record per image
  (:func:`output_dtype`).

Together they apply exactly the model's :func:`skinattn.models.eval_transform` (resize on uint8, then scale
and normalise), so a served prediction equals :class:`skinattn.inference.Predictor`'s for the same image;
both turn logits into probabilities with the model card's temperature (``SoftAttentionNet.probabilities``).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from skinattn.models import attention_heatmap, describe_calibration, eval_transform, load_model, overlay, read_card
from skinattn.models.config import ModelConfig

# eval_transform is [Resize, ToImage, ToDtype(scale), Normalize]; the first two stay per request.
_PER_REQUEST_STEPS = 2


def output_dtype(num_classes: int, grid: tuple[int, int] | None) -> np.dtype:
    """One image's result as a numpy record: ``probabilities`` (class order) and, for a Soft Attention model,
    ``attention`` (alpha on the SA layer's h×w grid, scaled to [0, 1]). A record array splits along axis 0
    like any other, so BentoML hands each caller its own rows of a batch."""
    fields = [("probabilities", "<f4", (num_classes,))]
    if grid is not None:
        fields.append(("attention", "<f4", tuple(grid)))
    return np.dtype(fields)


def _input_shape(config: ModelConfig) -> tuple[int, int, int]:
    return (3, config.input_size, config.input_size)


class Preprocessor:
    """What the API service needs of a saved model folder, from its card alone (no weights loaded)."""

    def __init__(self, model_dir: str | Path) -> None:
        self.card = read_card(model_dir)
        self.config = ModelConfig.from_dict(self.card["config"])
        self._resize = v2.Compose(eval_transform(self.config).transforms[:_PER_REQUEST_STEPS])
        self.input_shape = _input_shape(self.config)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def has_attention(self) -> bool:
        return self.config.soft_attention

    def prepare(self, image: Image.Image) -> np.ndarray:
        """An RGB image as its resized uint8 pixels, shape ``(1, 3, S, S)``: the batchable API's input."""
        pixels = self._resize(image.convert("RGB"))
        if pixels.dtype != torch.uint8:  # eval_transform changed: the split above would be wrong
            raise RuntimeError(f"expected uint8 pixels after resizing, got {pixels.dtype}")
        return np.ascontiguousarray(pixels.numpy())[None]

    def overlay_base(self, image: Image.Image) -> Image.Image:
        """The picture the attention overlay is drawn on: ``image`` at the model's input size."""
        size = self.config.input_size
        return image.convert("RGB").resize((size, size), Image.BILINEAR)

    def overlay_png(self, image: Image.Image, grid: np.ndarray | list[list[float]]) -> str:
        """The attention grid upsampled over the image at the model's input size, as a base64 PNG."""
        size = self.config.input_size
        heat = attention_heatmap(torch.as_tensor(np.asarray(grid, dtype=np.float32))[None, None], (size, size))[0]
        base = image if image.size == (size, size) and image.mode == "RGB" else self.overlay_base(image)
        picture = overlay(base, heat)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")


class ServingModel:
    """A saved model folder (``model.safetensors`` + ``model.json``) loaded once for serving."""

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu") -> None:
        self.card = read_card(model_dir)
        self.device = torch.device(device)
        self.model = load_model(model_dir, map_location=self.device)
        self.config = self.model.config
        self._normalise = v2.Compose(eval_transform(self.config).transforms[_PER_REQUEST_STEPS:])
        self.input_shape = _input_shape(self.config)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    @property
    def temperature(self) -> float:
        """The temperature :meth:`classify` applies to the logits (the card's calibration; 1 when it has none)."""
        return self.model.temperature

    def describe_calibration(self) -> str:
        """For the start-up log: the temperature applied and where it came from."""
        return describe_calibration(self.model.calibration)

    def check_batch(self, pixels: object) -> np.ndarray:
        """``pixels`` if it is a ``(N, 3, S, S)`` uint8 array of this model's input size, else ValueError."""
        if not isinstance(pixels, np.ndarray):
            raise ValueError(f"expected a numpy array of prepared images, got {type(pixels).__name__}")
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != self.input_shape:
            raise ValueError(f"expected uint8 pixels of shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {pixels.dtype} {pixels.shape}")  # fmt: skip
        return pixels

    @torch.inference_mode()
    def classify(self, pixels: np.ndarray) -> np.ndarray:
        """Classify ``(N, 3, S, S)`` prepared images in one forward pass; one :func:`output_dtype` record each."""
        pixels = self.check_batch(pixels)
        if not pixels.flags.writeable:  # e.g. a pickle buffer: torch wants memory it may own
            pixels = pixels.copy()
        batch = self._normalise(torch.from_numpy(pixels)).to(self.device)
        grids = None
        if self.model.has_attention:
            logits, maps = self.model.forward_with_attention(batch)
            grids = _unit_scale(maps.float().sum(dim=1)).cpu().numpy()
        else:
            logits = self.model(batch)
        probabilities = self.model.probabilities(logits).cpu().numpy()  # the card's temperature applied
        out = np.empty(len(pixels), dtype=output_dtype(probabilities.shape[1], None if grids is None else grids.shape[1:]))
        out["probabilities"] = probabilities
        if grids is not None:
            out["attention"] = grids
        return out

    def warm_up(self, batch_size: int, passes: int) -> None:
        """Run ``passes`` forward passes at ``batch_size`` so that the first requests do not pay for lazy
        initialisation (allocator growth, cuDNN autotuning)."""
        blank = np.zeros((batch_size, *self.input_shape), dtype=np.uint8)
        for _ in range(passes):
            self.classify(blank)


def _unit_scale(alpha: torch.Tensor) -> torch.Tensor:
    """Scale each (h, w) map of a (B, h, w) batch to [0, 1]; a flat map becomes zeros."""
    low = alpha.amin(dim=(1, 2), keepdim=True)
    span = alpha.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (alpha - low) / span.clamp_min(1e-12), torch.zeros_like(alpha))
