"""CLI: ``skinattn train --config FILE [overrides]``: train a classifier on a prepared data set."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from skinattn.cli.argtypes import THREADS_HELP, positive_int

if TYPE_CHECKING:
    from skinattn.training import TrainResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a Soft-Attention classifier on a prepared data set (resumable)",
        description=(
            "Train on the train split of a folder written by 'skinattn prepare', early-stop and pick the best "
            "epoch on its val split (test is never read). Writes OUT/config.yaml, OUT/history.jsonl (one line "
            "per epoch), OUT/checkpoints/last.pt (every epoch), OUT/model/ (best model: model.safetensors + "
            "model.json, which also stores the temperature fitted on the val split unless "
            "--set train.calibrate=false), OUT/summary.json and OUT/curves.html (per-epoch loss and validation metrics, drawn), "
            "plus OUT/tensorboard/ with --set train.tensorboard=true. Defaults are the paper's: "
            "Adam(lr=0.01, eps=0.1), cross-entropy, batch 16. With more than one visible GPU it relaunches itself under torchrun "
            "(one process per GPU, DDP). See docs/training.md for every config field."
        ),
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config (see configs/); defaults are used when omitted")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field, e.g. --set optim.lr=0.001 --set 'loss.class_weights={mel: 5}' (repeatable)",
    )
    parser.add_argument("--data", metavar="DIR", help="prepared data folder (sets data.prepared)")
    parser.add_argument("--out", metavar="DIR", help="run folder (sets out_dir)")
    parser.add_argument("--arch", help="architecture (sets model.arch; see 'skinattn models list')")
    parser.add_argument("--epochs", type=int, help="maximum epochs (sets train.epochs)")
    parser.add_argument("--seed", type=int, help="random seed (sets train.seed)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="sets train.device")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from its last checkpoint (its saved config.yaml is used when --config is omitted)",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="processes for DDP on one node (default: the number of visible GPUs; 1 disables the torchrun relaunch)",
    )
    parser.add_argument(
        "--no-progress", action="store_true",
        help="no progress bars (sets train.progress=false); the one-line summary of each epoch is still printed",
    )  # fmt: skip
    parser.add_argument("--threads", type=positive_int, metavar="N", help=f"{THREADS_HELP} (sets train.threads)")
    parser.set_defaults(handler=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    """Explicit flags as ``key=value`` overrides, applied after any ``--set``."""
    flags = {
        "data.prepared": args.data,
        "out_dir": args.out,
        "model.arch": args.arch,
        "train.epochs": args.epochs,
        "train.seed": args.seed,
        "train.device": args.device,
        "train.threads": args.threads,
    }
    extra = [f"{key}={json.dumps(value)}" for key, value in flags.items() if value is not None]
    if args.no_progress:
        extra.append("train.progress=false")
    return [*args.overrides, *extra]


def _relaunch_under_torchrun(args: argparse.Namespace) -> int | None:
    """With several GPUs and no torchrun around us, start one process per GPU; None = train here."""
    if "WORLD_SIZE" in os.environ or args.device == "cpu":
        return None
    import torch

    nproc = args.nproc if args.nproc is not None else torch.cuda.device_count()
    if nproc <= 1:
        return None
    # No "--nproc 1" after the module: torchrun's argparse reads every argument, and "--nproc" is an ambiguous
    # prefix of its --nproc-per-node (it refuses to start). Under torchrun, WORLD_SIZE stops a relaunch.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "skinattn", "train"]
    if args.config:
        command += ["--config", args.config]
    for override in _overrides(args):
        command += ["--set", override]
    if args.resume:
        command.append("--resume")
    print(f"{nproc} GPUs: relaunching under torchrun: {' '.join(command)}", file=sys.stderr)
    return subprocess.call(command)


def _write_curves(result: TrainResult) -> None:
    """OUT/curves.html: the same page as the pipeline's train step shows (skinattn.evaluation.curves)."""
    from skinattn.evaluation.curves import CURVES_FILE, write_curves_page
    from skinattn.training.trainer import HISTORY_FILE

    write_curves_page(result.out_dir / HISTORY_FILE, result.out_dir / CURVES_FILE, monitor=result.monitor)


def run(args: argparse.Namespace) -> int:
    from skinattn.errors import SkinattnError
    from skinattn.training import load_config, resume_config, train

    code = _relaunch_under_torchrun(args)
    if code is not None:
        return code
    overrides = _overrides(args)
    if args.resume and not args.config:
        if not args.out:
            raise SkinattnError("--resume without --config needs --out DIR (the run folder to continue)")
        config = resume_config(args.out, overrides)
    else:
        config = load_config(args.config, overrides)
    result = train(config, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        _write_curves(result)
        print(
            json.dumps(
                {
                    "model": str(result.model_dir),
                    "best_epoch": result.best_epoch,
                    "monitor": result.monitor,
                    "best_value": result.best_value,
                    "epochs_run": result.epochs_run,
                    "stop_reason": result.stop_reason,
                }
            )
        )
    return 0
