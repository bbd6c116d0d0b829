"""Per-epoch training checkpoints: everything a killed run needs to continue as if it had never stopped.

A checkpoint holds the model, optimizer and scheduler states, the epoch just finished, the early-stopping
state (best metric, its epoch, epochs without improvement), the history so far and the RNG states of
python, numpy and torch (CPU and CUDA). It contains only tensors, numbers, strings, lists, tuples and
dicts, so it is written with ``torch.save`` and read back with ``weights_only=True``: loading a checkpoint
never unpickles arbitrary objects. Each one is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skinattn.errors import SkinattnError
from skinattn.fileio import atomic_path

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
CHECKPOINT_FORMAT = "skinattn-train-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(SkinattnError):
    """A checkpoint is missing, unreadable or from another kind of run."""


def rng_states() -> dict[str, Any]:
    """The global RNG states, as tensors and plain values only."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(_as_tuples(states["python"]))
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuples(value: Any) -> Any:
    """``random.setstate`` wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (see the module docstring) atomically, tagged with the format and version."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state, "rng": rng_states()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse files that are not training checkpoints."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"{file}: no checkpoint to resume from")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file; the message says which
        raise CheckpointError(f"{file}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{file}: not a skinattn training checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{file}: checkpoint version {state['version']} is newer than this skinattn")
    return state
