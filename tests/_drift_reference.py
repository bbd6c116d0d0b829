"""Models saved with a drift reference and degenerate collections, shared by the scoring and pipeline tests.

Training stores as reference its validation predictions (tests/training/test_train_reference.py trains for
real); here a tiny random model gets one the same way, from its own predictions on a folder of images, so
that scoring that folder again must look like "the training data". Importable from every test folder.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from skinattn.data.images import open_image
from skinattn.evaluation.distribution import REFERENCE_KEY, reference_distribution
from skinattn.inference import Predictor
from skinattn.models import save_model
from skinattn.models.network import SoftAttentionNet


def save_with_reference(model: SoftAttentionNet, out: Path, images: Path, labels: Mapping[str, str] | None = None) -> Path:
    """Save ``model`` into ``out`` with, as its reference, its own predictions on the decodable ``*.jpg``
    of ``images`` (and their ``labels``, {image id: class}, when given)."""
    save_model(model, out)
    predictor = Predictor(out)
    names = list(predictor.config.class_names)
    decoded, classes = [], []
    for path in sorted(images.glob("*.jpg")):
        try:
            decoded.append(open_image(str(path)))
        except Exception:  # noqa: BLE001 - the corrupt test files: not part of the reference
            continue
        classes.append(names.index(labels[path.stem]) if labels and labels.get(path.stem) in names else -1)
    probabilities = np.array([[p.probabilities[n] for n in names] for p in predictor.predict(decoded)])
    known = np.array([c for c in classes if c >= 0], dtype=np.int64)
    return save_model(model, out, metadata={REFERENCE_KEY: reference_distribution(known, probabilities, names)})


def uniform_jpegs(folder: Path, count: int, size: int = 40) -> list[str]:
    """``count`` JPEGs of one flat colour each (greys and near-greys): images nothing like a lesion."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for n in range(count):
        level = 96 + (n % 4) * 8
        buffer = io.BytesIO()
        Image.new("RGB", (size, size), (level, level, level)).save(buffer, format="JPEG", quality=95)
        (folder / f"flat_{n:03d}.jpg").write_bytes(buffer.getvalue())
        names.append(f"flat_{n:03d}")
    return names
