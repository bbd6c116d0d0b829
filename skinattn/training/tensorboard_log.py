"""Optional TensorBoard event files of a training run (``train.tensorboard: true``).

Why: ``history.jsonl`` is the record of a run, but people watching a long run live (or comparing many runs)
reach for TensorBoard. The event files hold the same per-epoch numbers as the history plus the loss of
every training batch, under ``<out_dir>/tensorboard/``; ``tensorboard --logdir runs/`` shows them.

Why ``torch.utils.tensorboard``: the writer ships with torch (versioned with it, nothing extra to keep
compatible), and the one package it needs, ``tensorboard``, is also the viewer people must install to look
at the files at all and the reader (``EventAccumulator``) the tests use. tensorboardX would add a second
writer library and still need ``tensorboard`` to view anything. The package is an optional extra
(``pip install 'skinattn[tensorboard]'``) because it brings grpcio, absl-py and markdown that nothing else
needs.

Tags: ``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy``, ``val/balanced_accuracy``,
``val/macro_auc``, ``optim/lr``, ``speed/images_per_second``, ``speed/epoch_seconds`` (step = epoch), and
``train/batch_loss`` (step = global batch index, counted from 1; under DDP the batches of rank 0, the only
process that writes).

An epoch's events are written after its checkpoint, so a killed and resumed run never logs an epoch twice
(a kill in the moment between the checkpoint and the flush leaves that one epoch out of the events, never
out of ``history.jsonl``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from skinattn.training.config import ConfigError

TENSORBOARD_DIR = "tensorboard"
# history.jsonl field -> TensorBoard tag of the per-epoch scalars.
EPOCH_TAGS: dict[str, str] = {
    "train_loss": "train/loss",
    "train_accuracy": "train/accuracy",
    "val_loss": "val/loss",
    "accuracy": "val/accuracy",
    "balanced_accuracy": "val/balanced_accuracy",
    "macro_auc": "val/macro_auc",
    "lr": "optim/lr",
    "images_per_second": "speed/images_per_second",
    "epoch_seconds": "speed/epoch_seconds",
}
BATCH_LOSS_TAG = "train/batch_loss"


def require_tensorboard() -> None:
    """Fail in one line, before any training, when ``train.tensorboard`` is on and the package is missing."""
    try:
        importlib.import_module("tensorboard")
        importlib.import_module("torch.utils.tensorboard")  # also checks the version torch needs
    except ImportError as exc:
        raise ConfigError(
            f"train.tensorboard is true but TensorBoard cannot be loaded ({exc}); "
            "install it with: pip install 'skinattn[tensorboard]' (or set train.tensorboard=false)"
        ) from None


class EventLog:
    """The run's TensorBoard writer: one call per finished epoch (rank 0 only)."""

    def __init__(self, out_dir: str | Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(out_dir) / TENSORBOARD_DIR
        self._writer = SummaryWriter(log_dir=str(self.log_dir))

    def write_epoch(self, record: Mapping[str, Any], batch_losses: Sequence[float], first_batch: int) -> None:
        """The epoch's scalars at step ``record['epoch']`` and each batch's loss from step ``first_batch`` on;
        flushed so that a TensorBoard watching the folder sees the epoch at once."""
        epoch = int(record["epoch"])
        for field, tag in EPOCH_TAGS.items():
            value = record.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value):
                self._writer.add_scalar(tag, float(value), epoch)
        for offset, loss in enumerate(batch_losses):
            self._writer.add_scalar(BATCH_LOSS_TAG, float(loss), first_batch + offset)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
