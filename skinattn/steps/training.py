"""Steps of the train component (``components/training.py``): train on a prepared folder, keep the best model,
and draw its training curves for the KFP UI."""

from __future__ import annotations

import json
import shutil
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
    pretrained: str = "",
) -> list[str]:
    """The ``section.field=value`` overrides of the default TrainConfig that the pipeline form sets.
    ``pretrained``: a weights file path or ``s3://`` URI (skinattn.models.pretrained); "" = random init."""
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
    if pretrained:
        values["model.pretrained"] = str(pretrained)
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def train_step(
    prepared: str | Path, model_out: str | Path, *, gpus: int = 0, timeout_hours: float = 0.0, **settings: Any
) -> dict[str, Any]:
    """Train on a prepared folder; write the best model (plus config, history, summary) into ``model_out``.

    ``settings`` are the keyword arguments of :func:`training_overrides`. The run is ``skinattn train`` in a
    child process group: ``--nproc N`` with ``gpus`` > 1 (torchrun, one process per GPU), else one process
    (CUDA when available, else CPU). It is killed, and the step fails saying so, after ``timeout_hours``
    (0 = derived from the epochs, :func:`skinattn.run_parameters.train_time_limit_hours`): a hung NCCL
    collective never returns to Python, so the limit is enforced from outside. The checkpoints stay in a
    scratch folder: a retried pod starts afresh.
    """
    from skinattn.deadline import run_with_deadline
    from skinattn.run_parameters import train_time_limit_hours

    limit_h = train_time_limit_hours(timeout_hours, settings["epochs"])
    model_out = Path(model_out)
    with tempfile.TemporaryDirectory(prefix="skinattn-train-") as scratch:
        run_dir = Path(scratch) / "run"
        overrides = training_overrides(prepared, run_dir, **settings)
        command = [sys.executable, "-m", "skinattn", "train", "--nproc", str(max(int(gpus), 1))]
        for override in overrides:
            command += ["--set", override]
        print(f"training with a time limit of {limit_h:g} h")
        code = run_with_deadline(command, limit_h * 3600, f"training on {int(gpus)} GPU(s)")
        if code != 0:
            raise SkinattnError(f"training on {int(gpus)} GPU(s) failed (exit status {code}; the log above says why)")
        collect_model_folder(run_dir, model_out)
    return json.loads((model_out / "summary.json").read_text(encoding="utf-8"))


# What a train step hands on besides the best model's files (model/ of the run folder): the same for the pod
# path above and for rank 0 of a TrainJob (skinattn.trainjob.node), so both produce the same artifact.
RUN_FILES = ("config.yaml", "history.jsonl", "summary.json")


def collect_model_folder(run_dir: str | Path, model_out: str | Path) -> Path:
    """The model artifact of a finished run folder: ``model/`` plus :data:`RUN_FILES`, into ``model_out``."""
    run_dir, model_out = Path(run_dir), Path(model_out)
    shutil.copytree(run_dir / "model", model_out, dirs_exist_ok=True)
    for name in RUN_FILES:
        shutil.copy2(run_dir / name, model_out / name)
    return model_out


def curves_step(model_dir: str | Path, curves_out: str | Path) -> Path:
    """Write the train task's ``curves`` HTML artifact (per-epoch loss and validation metrics, see
    ``skinattn.evaluation.curves``) from the ``history.jsonl`` that :func:`train_step` put in ``model_dir``."""
    from skinattn.evaluation.curves import write_curves_page
    from skinattn.evaluation.history import HISTORY_FILE

    model_dir = Path(model_dir)
    summary_path = model_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    return write_curves_page(model_dir / HISTORY_FILE, curves_out, monitor=summary.get("monitor"))
