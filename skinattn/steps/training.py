"""Step of the train component (``components/training.py``): train on a prepared folder, keep the best model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from skinattn.errors import SkinattnError


def training_overrides(
    prepared: str | Path,
    run_dir: str | Path,
    *,
    arch: str,
    soft_attention: bool,
    image_size: int,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> list[str]:
    """The ``section.field=value`` overrides of the default TrainConfig that the pipeline form sets."""
    values: dict[str, Any] = {
        "out_dir": str(run_dir),
        "data.prepared": str(prepared),
        "model.arch": arch,
        "model.soft_attention": bool(soft_attention),
        "model.img_size": int(image_size) if image_size else None,
        "train.epochs": int(epochs),
        "train.batch_size": int(batch_size),
        "optim.lr": float(lr),
        "train.seed": int(seed),
        "train.progress": False,  # pod logs are not terminals: one line per epoch is printed instead
    }
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def train_step(prepared: str | Path, model_out: str | Path, *, gpus: int = 0, **settings: Any) -> dict[str, Any]:
    """Train on a prepared folder; write the best model (plus config, history, summary) into ``model_out``.

    ``settings`` are the keyword arguments of :func:`training_overrides`. With ``gpus`` > 1 the run goes
    through ``skinattn train --nproc N`` (torchrun, one process per GPU); otherwise it runs in this process
    (CUDA when available, else CPU). The checkpoints stay in a scratch folder: a retried pod starts afresh.
    """
    from skinattn.training import load_config, train

    model_out = Path(model_out)
    with tempfile.TemporaryDirectory(prefix="skinattn-train-") as scratch:
        run_dir = Path(scratch) / "run"
        overrides = training_overrides(prepared, run_dir, **settings)
        if int(gpus) > 1:
            command = [sys.executable, "-m", "skinattn", "train", "--nproc", str(int(gpus))]
            for override in overrides:
                command += ["--set", override]
            code = subprocess.call(command)
            if code != 0:
                raise SkinattnError(f"distributed training on {gpus} GPUs failed (exit status {code})")
        else:
            train(load_config(None, overrides))
        shutil.copytree(run_dir / "model", model_out, dirs_exist_ok=True)
        for name in ("config.yaml", "history.jsonl", "summary.json"):
            shutil.copy2(run_dir / name, model_out / name)
    return json.loads((model_out / "summary.json").read_text(encoding="utf-8"))
