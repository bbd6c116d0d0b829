"""What a model needs to be rebuilt and fed: saved as the JSON card next to its weights."""

from __future__ import annotations

import dataclasses
from typing import Any

from skinattn.errors import ModelError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture and preprocessing facts of one model.

    ``mean``/``std`` are applied to pixels scaled to [0, 1]; mean = std = 0.5 is the [-1, 1] scaling the
    authors used. ``input_size`` is the square side the model is fed at.
    """

    arch: str
    num_classes: int
    class_names: tuple[str, ...]
    soft_attention: bool
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    heads: int = 16
    gamma_init: float = 0.01
    relu_logits: bool = False
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if len(self.class_names) != self.num_classes:
            raise ModelError(
                f"{len(self.class_names)} class names given for num_classes={self.num_classes}: {list(self.class_names)}"
            )
        if self.input_size < 16:
            raise ModelError(f"input_size must be at least 16 px, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("class_names", "mean", "std"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(f"model config has unknown field(s) {unknown}")
        values = dict(data)
        for key in ("class_names", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ModelError(f"model config is incomplete: {exc}") from exc
