"""The distribution of a model's predictions over a collection of images: how often each class is the top
class, and how confident the model is (its maximum probability), counted over fixed bins.

Two users count the same way, with the same bins, here:

- training stores the validation split's distribution with the model, the **reference**
  (:func:`reference_distribution`, in the model card's ``metadata["reference"]``; computed with the best
  model once training ends, see :mod:`skinattn.training.trainer`). It travels inside ``model.json``, so the
  registry and the BentoML export, which copy the card byte for byte, carry it too;
- batch scoring counts the scored collection (:class:`PredictionCounts`, streamed chunk by chunk) and
  compares the two (:mod:`skinattn.scoring.drift`).

Confidence bins are fixed, ten of width 0.1 over [0, 1] (the last one closed: a probability of 1.0 is in
[0.9, 1.0]), so that distributions of different runs and models are comparable without storing raw values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CONFIDENCE_BINS = 10
CONFIDENCE_EDGES: tuple[float, ...] = tuple(round(i / CONFIDENCE_BINS, 10) for i in range(CONFIDENCE_BINS + 1))
REFERENCE_KEY = "reference"  # in the model card's metadata
REFERENCE_FORMAT = "skinattn-prediction-reference"
REFERENCE_VERSION = 1


def confidence_bins(max_probabilities: np.ndarray) -> np.ndarray:
    """The bin index (0..CONFIDENCE_BINS-1) of each maximum probability; 1.0 falls in the last bin."""
    values = np.asarray(max_probabilities, dtype=np.float64)
    return np.clip(np.floor(values * CONFIDENCE_BINS).astype(np.int64), 0, CONFIDENCE_BINS - 1)


@dataclasses.dataclass
class PredictionCounts:
    """Top-class counts (model class order) and a confidence histogram over :data:`CONFIDENCE_EDGES`."""

    class_names: list[str]
    predicted: np.ndarray  # int64, one count per class
    confidence: np.ndarray  # int64, one count per confidence bin
    confidence_sum: float = 0.0  # for the exact mean

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> PredictionCounts:
        return cls(list(class_names), np.zeros(len(class_names), np.int64), np.zeros(CONFIDENCE_BINS, np.int64))

    @classmethod
    def of(cls, probabilities: np.ndarray, class_names: Sequence[str]) -> PredictionCounts:
        counts = cls.empty(class_names)
        counts.add(probabilities)
        return counts

    def add(self, probabilities: np.ndarray, top: np.ndarray | None = None) -> None:
        """Count a block of rows of class probabilities; ``top`` (class indices) defaults to their argmax."""
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(self.class_names))
        if not len(probabilities):
            return
        top = probabilities.argmax(axis=1) if top is None else np.asarray(top, dtype=np.int64)
        confidence = probabilities.max(axis=1)
        self.predicted += np.bincount(top, minlength=len(self.class_names))
        self.confidence += np.bincount(confidence_bins(confidence), minlength=CONFIDENCE_BINS)
        self.confidence_sum += float(confidence.sum())

    @property
    def images(self) -> int:
        return int(self.predicted.sum())

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.images if self.images else None

    def to_dict(self) -> dict[str, Any]:
        mean = self.mean_confidence
        return {
            "images": self.images,
            "predicted": {name: int(n) for name, n in zip(self.class_names, self.predicted)},
            "confidence_edges": list(CONFIDENCE_EDGES),
            "confidence": [int(n) for n in self.confidence],
            "mean_confidence": None if mean is None else round(mean, 6),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PredictionCounts:
        """The inverse of :meth:`to_dict` (the mean is kept to its stored precision)."""
        if [float(e) for e in data["confidence_edges"]] != list(CONFIDENCE_EDGES):
            raise ValueError(f"confidence bins {data['confidence_edges']} differ from {list(CONFIDENCE_EDGES)}")
        names = list(data["predicted"])
        counts = cls(names, np.array([int(data["predicted"][n]) for n in names], np.int64),
                     np.array([int(n) for n in data["confidence"]], np.int64))  # fmt: skip
        counts.confidence_sum = float(data.get("mean_confidence") or 0.0) * counts.images
        return counts


def reference_distribution(
    labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], source: str = "validation split"
) -> dict[str, Any]:
    """What a model stores about its validation predictions: top-class counts, the confidence histogram and
    its mean, and the true-label counts (``labels`` are class indices)."""
    counts = PredictionCounts.of(probabilities, class_names)
    labels = np.asarray(labels, dtype=np.int64)
    label_counts = np.bincount(labels, minlength=len(class_names)) if len(labels) else np.zeros(len(class_names), int)
    return {
        "format": REFERENCE_FORMAT,
        "version": REFERENCE_VERSION,
        "source": source,
        **counts.to_dict(),
        "labels": {name: int(n) for name, n in zip(class_names, label_counts)},
    }


def read_reference(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference stored in a model card, or None when the model has none (saved before references
    existed, or not by training). A reference of another format or version is ignored too."""
    reference = (card.get("metadata") or {}).get(REFERENCE_KEY)
    if not isinstance(reference, Mapping) or reference.get("format") != REFERENCE_FORMAT:
        return None
    if int(reference.get("version", 0)) > REFERENCE_VERSION:
        return None
    return dict(reference)
