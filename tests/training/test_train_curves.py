"""What a training run shows besides history.jsonl: the train step's curves artifact (the KFP UI's HTML on
the train task), and the optional TensorBoard event files (train.tensorboard), read back with TensorBoard's
own reader, across a kill and a resume."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from skinattn.steps.training import curves_step, train_step
from skinattn.training import ConfigError, train
from skinattn.training.tensorboard_log import BATCH_LOSS_TAG, EPOCH_TAGS, TENSORBOARD_DIR, require_tensorboard


def read_history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines()]


def test_train_step_writes_the_curves_artifact(prepared: Path, tmp_path: Path) -> None:
    model_out = tmp_path / "model"
    summary = train_step(
        prepared, model_out, gpus=0, arch="resnet10t", soft_attention=True, image_size=32, epochs=2,
        batch_size=16, lr=0.01, seed=0,
    )  # fmt: skip
    curves = curves_step(model_out, tmp_path / "artifacts" / "curves")  # KFP gives a path without a suffix
    page = curves.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 1 and not re.search(r'src="(?!data:)', page)
    assert page.count("<tr>") == 1 + 2  # heading + one row per epoch
    assert f"best epoch {summary['best_epoch']} by val_loss" in page


class SimulatedKill(Exception):
    pass


def _kill_after_first_epoch(record: dict[str, Any]) -> None:
    if record["epoch"] == 1:
        raise SimulatedKill


def test_tensorboard_events_hold_every_epoch_once_across_a_kill_and_resume(small_config: Any, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    config = small_config(run, model={"img_size": 32}, train={"epochs": 2, "tensorboard": True, "batch_size": 32})
    with pytest.raises(SimulatedKill):
        train(config, callbacks=[_kill_after_first_epoch])
    train(config, resume=True)

    history = read_history(run)
    events = EventAccumulator(str(run / TENSORBOARD_DIR))
    events.Reload()
    assert len(list((run / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2  # one file per process run
    assert set(events.Tags()["scalars"]) == set(EPOCH_TAGS.values()) | {BATCH_LOSS_TAG}
    for field, tag in EPOCH_TAGS.items():
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2], tag
        for scalar, record in zip(scalars, history):
            assert scalar.value == pytest.approx(record[field], rel=1e-6) or math.isnan(record[field]), tag

    # Every batch's loss, numbered on from epoch to epoch; their image-weighted mean is the epoch's train_loss.
    images = history[0]["train_images"]
    sizes = [32] * (images // 32) + ([images % 32] if images % 32 else [])
    batches = events.Scalars(BATCH_LOSS_TAG)
    assert [s.step for s in batches] == list(range(1, 2 * len(sizes) + 1))
    for epoch, record in enumerate(history):
        losses = [s.value for s in batches[epoch * len(sizes) : (epoch + 1) * len(sizes)]]
        weighted = sum(loss * n for loss, n in zip(losses, sizes)) / images
        assert weighted == pytest.approx(record["train_loss"], rel=1e-5)


def test_tensorboard_without_the_package_fails_in_one_line_before_training(
    small_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now raises ImportError
    with pytest.raises(ConfigError, match=r"^train.tensorboard is true but TensorBoard cannot be loaded .*"
                                          r"pip install 'skinattn\[tensorboard\]'") as caught:  # fmt: skip
        require_tensorboard()
    assert "\n" not in str(caught.value)
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="train.tensorboard is true"):
        train(small_config(run, model={"img_size": 32}, train={"epochs": 1, "tensorboard": True}))
    assert not (run / "history.jsonl").exists()
