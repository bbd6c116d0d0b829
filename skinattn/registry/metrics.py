"""Metrics of a model version: reading them, knowing which way is better, comparing two versions.

A metrics file is any JSON object (what the evaluate step writes). It is stored in the registry as is;
for comparisons its numbers are flattened to dotted names: ``{"weighted_avg": {"auc": 0.98}}`` gives
``weighted_avg.auc``. Non-finite numbers (an AUC that is NaN because a class is absent from the test set)
are kept as ``None`` so that a comparison on them is refused instead of silently wrong.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from skinattn.registry.errors import RegistryError

Direction = Literal["higher", "lower"]

# Words in a metric name that decide its direction. Lower-is-better words are checked first, so that
# "accuracy_loss" or "val_loss" read as losses.
_LOWER_IS_BETTER = frozenset({"loss", "error", "err", "ece", "brier", "nll", "mse", "mae", "rmse", "logloss"})
_HIGHER_IS_BETTER = frozenset(
    {
        "accuracy", "acc", "auc", "auroc", "roc", "precision", "recall", "sensitivity", "specificity", "f1",
        "kappa", "mcc", "ap", "map", "iou", "dice", "balanced",
    }
)


def flatten_metrics(data: Mapping[str, Any], source: str = "metrics") -> dict[str, float | None]:
    """Numbers of a (possibly nested) metrics mapping under dotted names; lists and strings are skipped.

    Skipped values are not lost: the registry keeps the whole metrics file beside the flattened numbers.
    """
    if not isinstance(data, Mapping):
        raise RegistryError(f"{source}: metrics must be a JSON object, got {type(data).__name__}")
    flat: dict[str, float | None] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix] = float(value) if math.isfinite(value) else None

    walk("", data)
    if not flat:
        raise RegistryError(f"{source}: no numeric metric found (expected e.g. {{\"accuracy\": 0.91, \"auc\": 0.97}})")
    return flat


def load_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a metrics JSON file, naming the file in any error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RegistryError(f"{path}: metrics file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read metrics ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: metrics file is not valid JSON ({exc})") from exc
    flatten_metrics(data, str(path))  # validates: an object with at least one number
    return data


def metric_direction(metric: str) -> Direction:
    """Whether higher or lower values of ``metric`` are better, from the words in its name.

    ``auc``, ``accuracy``, ``precision.weighted``, ``balanced_accuracy`` → higher; ``loss``, ``val_loss``,
    ``error_rate`` → lower. A name with neither kind of word is refused: guessing could promote a worse model.
    """
    words = set(re.split(r"[^a-z0-9]+", metric.lower())) - {""}
    if words & _LOWER_IS_BETTER:
        return "lower"
    if words & _HIGHER_IS_BETTER:
        return "higher"
    raise RegistryError(
        f"cannot tell whether higher or lower is better for metric {metric!r}; "
        "give the direction explicitly (direction='higher'|'lower', --direction)"
    )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The outcome of comparing a candidate's metric with the champion's (None: there is no champion)."""

    metric: str
    direction: Direction
    candidate: float
    champion: float | None

    @property
    def better(self) -> bool:
        """True when the candidate strictly beats the champion; a tie is not better."""
        if self.champion is None:
            return True
        if self.direction == "higher":
            return self.candidate > self.champion
        return self.candidate < self.champion


def metric_value(metrics: Mapping[str, float | None], metric: str, owner: str) -> float:
    """One metric of a version, refusing missing and non-finite values with a message naming ``owner``."""
    if metric not in metrics:
        known = ", ".join(sorted(metrics)) or "none"
        raise RegistryError(f"{owner} has no metric {metric!r} (it has: {known})")
    value = metrics[metric]
    if value is None:
        raise RegistryError(f"{owner}: metric {metric!r} is not a finite number (NaN or infinite); cannot compare")
    return value


def compare(
    candidate: Mapping[str, float | None],
    champion: Mapping[str, float | None] | None,
    metric: str,
    direction: Direction | None = None,
    *,
    candidate_name: str = "candidate",
    champion_name: str = "champion",
) -> Comparison:
    """Compare flattened metrics on ``metric`` (direction inferred from its name unless given)."""
    if direction is None:
        direction = metric_direction(metric)
    elif direction not in ("higher", "lower"):
        raise RegistryError(f"direction must be 'higher' or 'lower', got {direction!r}")
    candidate_value = metric_value(candidate, metric, candidate_name)
    champion_value = None if champion is None else metric_value(champion, metric, champion_name)
    return Comparison(metric, direction, candidate_value, champion_value)
