"""The model side of the service, free of BentoML: preparing one image, classifying a batch, drawing maps.

The work is split at the point where requests are batched. :meth:`ServingModel.prepare` runs once per
request, in parallel across requests: it resizes the decoded image to the model's square input and
returns it as compact uint8 bytes. :meth:`ServingModel.classify` runs once per batch: it scales and
normalises the stacked pixels and makes one forward pass. Together they apply exactly the model's
:func:`skinattn.models.eval_transform` (resize on uint8, then scale and normalise), so a served prediction
equals :class:`skinattn.inference.Predictor`'s for the same image.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from skinattn.models import attention_heatmap, eval_transform, load_model, overlay, read_card

# eval_transform is [Resize, ToImage, ToDtype(scale), Normalize]; the first two stay per request.
_PER_REQUEST_STEPS = 2


@dataclasses.dataclass
class BatchResult:
    """One image's outcome in a batch: probabilities in class order and the attention grid, or an error."""

    probabilities: list[float] = dataclasses.field(default_factory=list)
    attention: list[list[float]] | None = None  # alpha on the SA layer's h×w grid, scaled to [0, 1]
    error: str | None = None


class ServingModel:
    """A saved model folder (``model.safetensors`` + ``model.json``) loaded once for serving."""

    def __init__(self, model_dir: str | Path, device: str | torch.device = "cpu") -> None:
        self.card = read_card(model_dir)
        self.device = torch.device(device)
        self.model = load_model(model_dir, map_location=self.device)
        self.config = self.model.config
        steps = eval_transform(self.config).transforms
        self._resize = v2.Compose(steps[:_PER_REQUEST_STEPS])
        self._normalise = v2.Compose(steps[_PER_REQUEST_STEPS:])
        self.pixel_bytes = 3 * self.config.input_size * self.config.input_size

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.config.class_names

    def prepare(self, image: Image.Image) -> str:
        """An RGB image as the base64 of its resized (3, S, S) uint8 pixels: the batch API's input."""
        pixels = self._resize(image.convert("RGB"))
        if pixels.dtype != torch.uint8:  # eval_transform changed: the split above would be wrong
            raise RuntimeError(f"expected uint8 pixels after resizing, got {pixels.dtype}")
        return base64.b64encode(pixels.contiguous().numpy().tobytes()).decode("ascii")

    def _decode(self, item: str) -> torch.Tensor:
        raw = base64.b64decode(item, validate=True)
        if len(raw) != self.pixel_bytes:
            size = self.config.input_size
            raise ValueError(f"expected {self.pixel_bytes} bytes (3×{size}×{size} uint8 pixels), got {len(raw)}")
        size = self.config.input_size
        return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8).reshape(3, size, size).copy())

    @torch.inference_mode()
    def classify(self, items: list[str]) -> list[BatchResult]:
        """Classify prepared images in one forward pass. A malformed item gets an error of its own and
        does not fail the others it was batched with (they may come from other clients)."""
        results: list[BatchResult] = [BatchResult() for _ in items]
        tensors, positions = [], []
        for index, item in enumerate(items):
            try:
                tensors.append(self._decode(item))
                positions.append(index)
            except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
                results[index].error = f"item {index}: not a prepared image ({exc})"
        if not tensors:
            return results
        batch = self._normalise(torch.stack(tensors)).to(self.device)
        if self.model.has_attention:
            logits, maps = self.model.forward_with_attention(batch)
            grids = _unit_scale(maps.float().sum(dim=1)).cpu().tolist()
        else:
            logits, grids = self.model(batch), [None] * len(tensors)
        probabilities = logits.float().softmax(dim=1).cpu().tolist()
        for index, probs, grid in zip(positions, probabilities, grids):
            results[index].probabilities = probs
            results[index].attention = grid
        return results

    def warm_up(self, batch_size: int, passes: int) -> None:
        """Run ``passes`` forward passes at ``batch_size`` so that the first requests do not pay for lazy
        initialisation (allocator growth, cuDNN autotuning)."""
        blank = self.prepare(Image.new("RGB", (self.config.input_size, self.config.input_size)))
        for _ in range(passes):
            self.classify([blank] * batch_size)

    def overlay_base(self, image: Image.Image) -> Image.Image:
        """The picture the attention overlay is drawn on: ``image`` at the model's input size."""
        size = self.config.input_size
        return image.convert("RGB").resize((size, size), Image.BILINEAR)

    def overlay_png(self, image: Image.Image, grid: list[list[float]]) -> str:
        """The attention grid upsampled over the image at the model's input size, as a base64 PNG."""
        size = self.config.input_size
        heat = attention_heatmap(torch.tensor(grid, dtype=torch.float32)[None, None], (size, size))[0]
        base = image if image.size == (size, size) and image.mode == "RGB" else self.overlay_base(image)
        picture = overlay(base, heat)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")


def _unit_scale(alpha: torch.Tensor) -> torch.Tensor:
    """Scale each (h, w) map of a (B, h, w) batch to [0, 1]; a flat map becomes zeros."""
    low = alpha.amin(dim=(1, 2), keepdim=True)
    span = alpha.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (alpha - low) / span.clamp_min(1e-12), torch.zeros_like(alpha))
