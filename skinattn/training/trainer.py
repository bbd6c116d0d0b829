"""The training loop: epochs, validation, early stopping, per-epoch checkpoints, exact resume.

Output folder (``config.out_dir``)::

    config.yaml              the full configuration of the run
    history.jsonl            one JSON object per finished epoch
    checkpoints/last.pt      the state after the last finished epoch (see skinattn.training.checkpoint)
    model/                   the best epoch's model (model.safetensors + model.json via save_model); the
                             card's metadata also holds the reference distribution of its validation
                             predictions, which batch scoring compares new collections with (drift),
                             and (train.calibrate) the temperature fitted on them, in the card's
                             calibration section; the training data facts the model card reads
                             (metadata.data) and, with model.pretrained, the starting weights' source
                             and sha256 (the card's pretrained section)
    summary.json             the outcome: best epoch and metric, why training stopped, validation figures
    tensorboard/             TensorBoard event files, only with train.tensorboard (skinattn.training.tensorboard_log)

Why resume is exact: every source of randomness in an epoch is re-seeded from (seed, epoch) when the
epoch starts -- the sample order, the DataLoader workers' augmentation seeds, and the global generators
that dropout and in-process augmentation draw from. An epoch therefore depends only on the weights,
optimizer and scheduler states it starts from, all of which the checkpoint holds; a run resumed after
epoch k repeats exactly what the uninterrupted run did in epoch k+1 onwards (on the same hardware and
settings).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from skinattn.data.summary import data_facts
from skinattn.errors import DataError, SkinattnError
from skinattn.evaluation.calibration import card_section, expected_calibration_error, fit_temperature
from skinattn.evaluation.distribution import REFERENCE_KEY, reference_distribution
from skinattn.fileio import atomic_open, write_json
from skinattn.models import calibrated_probabilities, create_model, describe_calibration, load_model, save_model
from skinattn.models.network import SoftAttentionNet
from skinattn.progress import step_bars
from skinattn.training import checkpoint as ckpt
from skinattn.training.config import ConfigError, TrainConfig, config_differences, load_config, save_config
from skinattn.training.datasets import (
    EpochSampler,
    SplitImages,
    balanced_weights,
    epoch_seed,
    normalise_transform,
    load_prepared,
    resolve_cache,
    train_transform,
    training_positions,
)
from skinattn.training.device import (
    Runtime,
    all_reduce_sum,
    apply_threads,
    barrier,
    init_distributed,
    main_process_first,
    resolve_runtime,
    seed_everything,
    shutdown_distributed,
)
from skinattn.training.tensorboard_log import EventLog, require_tensorboard
from skinattn.training.validation import is_improvement, per_class_recall, validation_metrics

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.jsonl"
SUMMARY_FILE = "summary.json"
MODEL_DIR = "model"
# Settings a resumed run may change: they decide how long to train or where it runs, not what an epoch
# computes. (A different device or worker count resumes correctly but not bit-identically.)
RESUMABLE_CHANGES: frozenset[str] = frozenset(
    {"out_dir", "train.epochs", "train.patience", "train.progress", "train.device", "train.compile",
     "train.tensorboard", "train.threads", "train.calibrate", "data.num_workers", "data.cache_dir"}
)

EpochCallback = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class TrainResult:
    """What a finished run produced."""

    out_dir: Path
    model_dir: Path
    best_epoch: int
    best_value: float
    monitor: str
    epochs_run: int
    stop_reason: str
    history: list[dict[str, Any]]


def train(config: TrainConfig, *, resume: bool = False, callbacks: Iterable[EpochCallback] = ()) -> TrainResult:
    """Run (or, with ``resume``, continue) training as ``config`` says; see the module docstring.

    ``callbacks`` are called on every process with each epoch's record, after its checkpoint is written.
    """
    apply_threads(config.train.threads)
    runtime = resolve_runtime(config.train, config.data.num_workers)
    init_distributed(runtime)
    try:
        return Trainer(config, runtime).fit(resume=resume, callbacks=list(callbacks))
    finally:
        shutdown_distributed()


def resume_config(out_dir: str | Path, overrides: Iterable[str] = ()) -> TrainConfig:
    """The saved configuration of the run in ``out_dir``, with ``overrides`` applied (for ``--resume``)."""
    path = Path(out_dir) / CONFIG_FILE
    if not path.is_file():
        raise SkinattnError(f"{path}: no saved configuration, so there is no run to resume in {out_dir}")
    config = load_config(path, overrides)
    config.out_dir = str(out_dir)
    return config


class Trainer:
    """One process's part of a run (one of several under DDP)."""

    def __init__(self, config: TrainConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.out = Path(config.out_dir)
        if config.train.tensorboard:  # every rank checks, so that none is left waiting for the others
            require_tensorboard()
        # Rank 0's per-batch losses of the running epoch, kept only for the TensorBoard event files.
        self.batch_losses: list[float] | None = [] if config.train.tensorboard and runtime.is_main else None
        seed_everything(config.train.seed, config.train.deterministic)

        self.splits = load_prepared(config.data.prepared)
        # For the model card: collection, licence-deciding format, split protocol and counts (skinattn.model_card).
        self.data_facts = data_facts(config.data.prepared)
        classes = self.splits.classes
        if config.train.monitor == "macro_auc" and self.splits.val["label"].nunique() < 2:
            raise ConfigError("train.monitor is macro_auc but the validation split has fewer than two classes")
        m = config.model
        self.model: SoftAttentionNet = create_model(
            m.arch,
            num_classes=len(classes),
            soft_attention=m.soft_attention,
            pretrained=m.pretrained,
            class_names=classes,
            img_size=m.img_size,
            dropout=m.dropout,
            heads=m.heads,
            gamma_init=m.gamma_init,
            relu_logits=m.relu_logits,
        )
        self.size = self.model.config.input_size
        self.criterion = nn.CrossEntropyLoss(
            weight=self._class_weights(classes), label_smoothing=config.loss.label_smoothing
        )
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=config.optim.lr,
            betas=config.optim.betas,
            eps=config.optim.eps,
            weight_decay=config.optim.weight_decay,
        )
        self.scheduler = self._make_scheduler()
        self._build_loaders()

    # ---- set-up ----------------------------------------------------------------------------------------

    def _class_weights(self, classes: list[str]) -> torch.Tensor | None:
        weights = self.config.loss.class_weights
        if not weights:
            return None
        unknown = sorted(set(weights) - set(classes))
        if unknown:
            raise ConfigError(f"loss.class_weights names unknown class(es) {unknown}; classes are {classes}")
        return torch.tensor([float(weights.get(c, 1.0)) for c in classes])

    def _make_scheduler(self) -> Any:
        o = self.config.optim
        if o.scheduler == "plateau":
            mode = "min" if self.config.train.monitor == "val_loss" else "max"
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode=mode, factor=o.plateau_factor, patience=o.plateau_patience, min_lr=o.min_lr
            )
        if o.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.config.train.epochs, eta_min=o.min_lr)
        return None

    def _build_loaders(self) -> None:
        cfg, rt, splits = self.config, self.runtime, self.splits
        mean, std = self.model.config.mean, self.model.config.std
        progress = cfg.train.progress and rt.is_main
        with main_process_first(rt):  # each node's first process builds a missing cache, the others open it
            train_cache = resolve_cache(splits.train, "train", self.size, cfg.data, progress)
            val_cache = resolve_cache(splits.val, "val", self.size, cfg.data, progress)
        positions = training_positions(splits, cfg.data.balance)
        self.train_set = SplitImages(
            splits.train, splits.classes, self.size, train_transform(cfg.augment, mean, std), train_cache, positions
        )
        self.val_set = SplitImages(splits.val, splits.classes, self.size, normalise_transform(mean, std), val_cache)
        weights = balanced_weights(splits) if cfg.data.balance == "sampler" else None
        self.sampler = EpochSampler(
            len(self.train_set), cfg.train.seed, weights=weights, rank=rt.rank, world_size=rt.world_size
        )
        # The loader's generator decides the workers' seeds; it is re-seeded from (seed, epoch) each epoch.
        self.loader_generator = torch.Generator()
        loader_options = {"num_workers": rt.num_workers, "pin_memory": rt.pin_memory}
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=cfg.train.batch_size,
            sampler=self.sampler,
            generator=self.loader_generator,
            drop_last=False,
            **loader_options,
        )
        self.val_loader = DataLoader(self.val_set, batch_size=cfg.train.eval_batch_size, shuffle=False, **loader_options)

    # ---- the run ---------------------------------------------------------------------------------------

    def fit(self, resume: bool, callbacks: list[EpochCallback]) -> TrainResult:
        state = self._resume_state() if resume else self._fresh_state()
        rt = self.runtime
        self.model.to(rt.device)
        if rt.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Only after the model is on its device: the optimizer state follows the parameters there.
        if resume:
            self._load_training_state(state)
        step_model: nn.Module = self.model
        if rt.distributed:
            device_ids = [rt.device.index] if rt.device.type == "cuda" else None
            step_model = DistributedDataParallel(self.model, device_ids=device_ids)
        if self.config.train.compile:
            step_model = torch.compile(step_model)

        events = EventLog(self.out) if self.batch_losses is not None else None
        try:
            return self._epochs(step_model, state, callbacks, events)
        finally:
            if events is not None:
                events.close()

    def _epochs(
        self, step_model: nn.Module, state: dict[str, Any], callbacks: list[EpochCallback], events: EventLog | None
    ) -> TrainResult:
        """Epochs until early stopping or ``train.epochs``; rank 0 writes each one's files as it ends."""
        rt = self.runtime
        history: list[dict[str, Any]] = state["history"]
        stop_reason = state.get("stop_reason") or ""
        epoch = state["epoch"]
        while not stop_reason and epoch < self.config.train.epochs:
            epoch += 1
            record = self._run_epoch(step_model, epoch)
            improved = is_improvement(self.config.train.monitor, record[self.config.train.monitor],
                                      state["best_value"], self.config.train.min_delta)
            if improved:
                state.update(best_value=record[self.config.train.monitor], best_epoch=epoch, bad_epochs=0)
                if rt.is_main:
                    save_model(self.model, self.out / MODEL_DIR, metadata=self._card_metadata(state, history + [record]))
            else:
                state["bad_epochs"] += 1
            record.update(improved=improved, bad_epochs=state["bad_epochs"])
            history.append(record)
            if state["bad_epochs"] >= self.config.train.patience:
                stop_reason = f"early stopping: {self.config.train.monitor} did not improve for {state['bad_epochs']} epochs"
            state.update(epoch=epoch, history=history, stop_reason=stop_reason)
            if rt.is_main:
                self._write_checkpoint(state)
                self._append_history(record)
                if events is not None:
                    events.write_epoch(record, self.batch_losses, first_batch=(epoch - 1) * len(self.train_loader) + 1)
                # One line per epoch whatever train.progress says: with the bars off (or a log file for
                # stdout), it is the only sign of life before the run ends.
                tqdm.write(_epoch_line(record, self.config.train.monitor), file=sys.stdout)
                sys.stdout.flush()
            for callback in callbacks:
                callback(record)
        if not stop_reason:
            stop_reason = f"reached train.epochs={self.config.train.epochs}"
        barrier(rt)
        return self._finish(state, history, stop_reason)

    def _fresh_state(self) -> dict[str, Any]:
        if (self.out / ckpt.CHECKPOINT_DIR / ckpt.LAST_CHECKPOINT).exists() or (self.out / HISTORY_FILE).exists():
            raise SkinattnError(
                f"{self.out}: holds an earlier run; pass --resume to continue it, or choose another --out"
            )
        if self.runtime.is_main:
            save_config(self.config, self.out / CONFIG_FILE)
        return {"epoch": 0, "best_value": None, "best_epoch": 0, "bad_epochs": 0, "history": [], "stop_reason": ""}

    def _resume_state(self) -> dict[str, Any]:
        saved_path = self.out / CONFIG_FILE
        if saved_path.is_file():
            changed = [k for k in config_differences(load_config(saved_path), self.config) if k not in RESUMABLE_CHANGES]
            if changed:
                raise ConfigError(
                    f"cannot resume {self.out}: the configuration differs from the saved run in {changed} "
                    f"(only {sorted(RESUMABLE_CHANGES)} may change)"
                )
        state = ckpt.load_checkpoint(self.out / ckpt.CHECKPOINT_DIR / ckpt.LAST_CHECKPOINT)
        if self.runtime.is_main:
            save_config(self.config, saved_path)
            # history.jsonl may hold a line the checkpoint does not (killed between the two writes).
            with atomic_open(self.out / HISTORY_FILE) as handle:
                for record in state["history"]:
                    handle.write(json.dumps(record) + "\n")
        return state

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        ckpt.restore_rng_states(state["rng"])

    def _run_epoch(self, step_model: nn.Module, epoch: int) -> dict[str, Any]:
        cfg, rt = self.config, self.runtime
        seed = epoch_seed(cfg.train.seed, epoch)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        self.sampler.set_epoch(epoch)
        self.loader_generator.manual_seed(epoch_seed(cfg.train.seed, epoch, stream=2))

        start = time.perf_counter()
        step_model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, images
        if self.batch_losses is not None:
            self.batch_losses.clear()
        # Per-step bars only where they are seen live: in a log file each redraw would be a line of its own,
        # and the epoch line already says what the bar would (skinattn.progress).
        bar = tqdm(self.train_loader, desc=f"epoch {epoch}/{cfg.train.epochs}", unit="batch", leave=False,
                   disable=not (rt.is_main and step_bars(cfg.train.progress)))
        for images, labels in bar:
            images, labels = rt.to_device(images), labels.to(rt.device, non_blocking=rt.pin_memory)
            with rt.autocast():
                logits = step_model(images)
            loss = self.criterion(logits.float(), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            n, batch_loss = labels.shape[0], loss.item()
            totals += torch.tensor([batch_loss * n, (logits.argmax(1) == labels).sum().item(), n], dtype=torch.float64)
            if self.batch_losses is not None:
                self.batch_losses.append(batch_loss)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.4f}")
        totals = all_reduce_sum(totals, rt)
        train_seconds = time.perf_counter() - start

        labels_np, probabilities = self._predict_val()
        metrics = validation_metrics(labels_np, probabilities)
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                monitored = metrics[cfg.train.monitor]
                self.scheduler.step(monitored if not math.isnan(monitored) else float("inf"))
            else:
                self.scheduler.step()
        return {
            "epoch": epoch,
            "train_loss": float(totals[0] / totals[2]),
            "train_accuracy": float(totals[1] / totals[2]),
            **metrics,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
            "train_images": int(totals[2]),
            "train_seconds": round(train_seconds, 3),
            "images_per_second": round(float(totals[2]) / train_seconds, 2),
            "epoch_seconds": round(time.perf_counter() - start, 3),
        }

    def _predict_val(self) -> tuple[np.ndarray, np.ndarray]:
        """Labels and uncalibrated (T = 1) probabilities of the validation split: what the epochs monitor."""
        labels, logits = self._val_logits()
        return labels, calibrated_probabilities(torch.from_numpy(logits)).numpy()

    @torch.no_grad()
    def _val_logits(self) -> tuple[np.ndarray, np.ndarray]:
        """Every rank scores the whole validation split with the same weights, so all ranks take the same
        early-stopping decision without exchanging it. Logits in float64, for the softmax and the
        temperature fit."""
        self.model.eval()
        logits, labels = [], []
        for images, batch_labels in self.val_loader:
            with self.runtime.autocast():
                batch_logits = self.model(self.runtime.to_device(images))
            logits.append(batch_logits.double().cpu())
            labels.append(batch_labels)
        return torch.cat(labels).numpy(), torch.cat(logits).numpy()

    # ---- writing ---------------------------------------------------------------------------------------

    def _write_checkpoint(self, state: dict[str, Any]) -> None:
        ckpt.save_checkpoint(
            self.out / ckpt.CHECKPOINT_DIR / ckpt.LAST_CHECKPOINT,
            {
                "epoch": state["epoch"],
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "best_value": state["best_value"],
                "best_epoch": state["best_epoch"],
                "bad_epochs": state["bad_epochs"],
                "stop_reason": state["stop_reason"],
                "history": state["history"],
                "monitor": self.config.train.monitor,
            },
        )

    def _append_history(self, record: dict[str, Any]) -> None:
        with open(self.out / HISTORY_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def _card_metadata(self, state: dict[str, Any], history: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        best = next((r for r in history if r["epoch"] == state["best_epoch"]), None)
        return {
            "training": {
                "monitor": self.config.train.monitor,
                "best_epoch": state["best_epoch"],
                "best_value": state["best_value"],
                "epochs_run": len(history),
                "best_epoch_metrics": best,
                "runtime": self.runtime.describe(),
                "train_images": int(len(self.splits.train)),
                "val_images": int(len(self.splits.val)),
                **extra,
            },
            "config": self.config.to_dict(),
            "data": self.data_facts,
        }

    @staticmethod
    def _calibration(labels: np.ndarray, logits: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
        """Temperature scaling fitted on the validation split (skinattn.evaluation.calibration), as the card's
        calibration section; ``probabilities`` are the T = 1 ones of ``logits``."""
        fit = fit_temperature(logits, labels)
        scaled = calibrated_probabilities(torch.from_numpy(logits), fit.temperature).numpy()
        return card_section(fit, expected_calibration_error(labels, probabilities).ece,
                            expected_calibration_error(labels, scaled).ece)

    def _finish(self, state: dict[str, Any], history: list[dict[str, Any]], stop_reason: str) -> TrainResult:
        model_dir = self.out / MODEL_DIR
        if not state["best_epoch"]:  # the same on every rank, so all of them stop here
            raise SkinattnError(
                f"{self.config.train.monitor} was never a number on the validation split, so no epoch "
                "could be chosen as the best (is the validation split too small?)"
            )
        if self.runtime.is_main:
            best = load_model(model_dir)
            self.model = best.to(self.runtime.device)
            labels, logits = self._val_logits()
            probabilities = calibrated_probabilities(torch.from_numpy(logits)).numpy()
            # The validation figures stay at T = 1, comparable with every epoch's line in history.jsonl.
            figures = validation_metrics(labels, probabilities)
            figures["recall_per_class"] = per_class_recall(labels, probabilities, self.splits.classes)
            metadata = self._card_metadata(state, history, stop_reason=stop_reason, best_model_val_metrics=figures)
            if self.config.train.calibrate:
                try:
                    best.calibration = self._calibration(labels, logits, probabilities)
                except DataError as exc:  # e.g. non-finite logits: the model is saved uncalibrated, and says so
                    print(f"calibration skipped: {exc}; the model is saved without a temperature (T = 1)")
                else:
                    probabilities = best.probabilities(torch.from_numpy(logits)).numpy()
                    print(f"calibration: {describe_calibration(best.calibration)}")
            # What batch scoring compares a new collection with (skinattn.scoring.drift): the best model's
            # validation predictions, as class counts and a confidence histogram, and the validation labels.
            # With the model's temperature, as scoring applies it: otherwise the confidence histograms of a
            # calibrated model's scoring runs would differ from the reference by the temperature alone.
            metadata[REFERENCE_KEY] = reference_distribution(labels, probabilities, self.splits.classes,
                                                             source=f"validation split, best epoch {state['best_epoch']}")
            save_model(best, model_dir, metadata=metadata)
            write_json(self.out / SUMMARY_FILE, metadata["training"] | {"model_dir": str(model_dir),
                                                                       "calibration": best.calibration})
            print(f"best epoch {state['best_epoch']} ({self.config.train.monitor} = {state['best_value']:.4f}); "
                  f"{stop_reason}; model: {model_dir}")
        barrier(self.runtime)
        return TrainResult(
            self.out, model_dir, state["best_epoch"], state["best_value"], self.config.train.monitor,
            len(history), stop_reason, history,
        )


def _epoch_line(record: dict[str, Any], monitor: str) -> str:
    return (
        f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f} val_loss {record['val_loss']:.4f} "
        f"bal_acc {record['balanced_accuracy']:.3f} macro_auc {record['macro_auc']:.3f} "
        f"({record['images_per_second']:.0f} img/s){' *' if record['improved'] else ''}"
    )
