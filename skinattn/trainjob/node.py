"""What every trainer node of a TrainJob runs: ``python -m skinattn.trainjob.node --prepared S3 --publish S3 --set ...``.

1. Copy the prepared data set from its S3 location into the node's scratch folder, once per node (the pods do
   not get KFP's artifact paths; every node needs the files, and G processes must not fetch them G times).
2. Run ``skinattn train`` under ``torchrun`` with the ``--set`` overrides the launcher rendered with
   :func:`skinattn.steps.training.training_overrides` (the pod path's overrides: both paths train alike), the
   data and run folders pointing into the scratch folder.
3. On node 0 only, after torchrun succeeded: collect the model folder (model + config + history + summary,
   :func:`skinattn.steps.training.collect_model_folder`) and publish it to ``--publish``; the launcher copies
   it from there into its KFP output.

The environment the ``torch-distributed`` runtime gives the ``node`` container (Kubeflow Trainer v2.2, its
Torch plugin ``pkg/runtime/framework/plugins/torch/torch.go`` and ``pkg/constants/constants.go``):

- ``PET_NNODES`` = ``spec.trainer.numNodes``; ``PET_NPROC_PER_NODE`` = ``numProcPerNode``;
- ``PET_NODE_RANK`` from the pod's ``batch.kubernetes.io/job-completion-index`` annotation (0 .. N-1);
- ``PET_MASTER_ADDR`` = ``<trainjob>-node-0-0.<trainjob>`` (node 0's pod behind the JobSet's headless
  service), ``PET_MASTER_PORT`` = 29500 (``ContainerTrainerPort``).

These are torchrun's own variables: every torchrun option reads ``PET_<OPTION>`` as its default
(``torch/distributed/argparse_util.py``, the ``env`` action used by ``torch/distributed/run.py`` for
``--nnodes``, ``--nproc-per-node``, ``--node-rank``, ``--master-addr``, ``--master-port``), so the command
below passes none of them: the runtime decides. torchrun's static rendezvous then gives every process
``RANK = node_rank * nproc_per_node + local_rank``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``, which :mod:`skinattn.training.device` reads (``init_process_group``
from the environment); global rank 0 is local rank 0 of node 0, the only process that writes the run folder,
which is why node 0 publishes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from skinattn.errors import SkinattnError
from skinattn.trainjob.spec import SCRATCH_DIR

# The variables the torch-distributed runtime sets (see the module docstring); torchrun reads them itself.
TORCHRUN_ENV = ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT")
# Overrides the node sets itself, whatever the launcher sent: they name this node's scratch folder.
NODE_PATH_KEYS = ("data.prepared", "out_dir")
# The command every node runs (spec.trainer.command of the TrainJob; the GPU image has its venv on PATH).
NODE_COMMAND = ["python", "-m", "skinattn.trainjob.node"]


def node_args(prepared_uri: str, publish_uri: str, overrides: Sequence[str]) -> list[str]:
    """``spec.trainer.args`` of the TrainJob: where the data is, where node 0 publishes, the overrides."""
    args = ["--prepared", prepared_uri, "--publish", publish_uri]
    for override in overrides:
        args += ["--set", override]
    return args


def torchrun_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The runtime's PET_* variables; refuse to start without them (not a TrainJob of torch-distributed)."""
    missing = [name for name in TORCHRUN_ENV if not environ.get(name)]
    if missing:
        raise SkinattnError(
            f"{', '.join(missing)} not set: this command runs on the nodes of a TrainJob of the torch-distributed "
            "runtime (Kubeflow Trainer), which sets them"
        )
    return {name: environ[name] for name in TORCHRUN_ENV}


def local_overrides(overrides: Sequence[str], scratch: Path) -> list[str]:
    """The launcher's overrides with the data and run folders pointing into this node's ``scratch``."""
    kept = [o for o in overrides if o.partition("=")[0].strip() not in NODE_PATH_KEYS]
    return [*kept, f"data.prepared={json.dumps(str(scratch / 'prepared'))}", f"out_dir={json.dumps(str(scratch / 'run'))}"]


def torchrun_command(overrides: Sequence[str]) -> list[str]:
    """``torchrun -m skinattn train --set ...`` with no rendezvous option: torchrun takes them from PET_*.
    Under torchrun, ``skinattn train`` sees WORLD_SIZE and trains in place (no relaunch). No argument after
    the module may be a prefix of a torchrun option: torchrun's argparse looks at all of them (``--nproc``
    would be refused as ambiguous with ``--nproc-per-node``); ``--set`` is none."""
    command = [sys.executable, "-m", "torch.distributed.run", "-m", "skinattn", "train"]
    for override in overrides:
        command += ["--set", override]
    return command


def run_node(
    prepared_uri: str,
    publish_uri: str,
    overrides: Sequence[str],
    *,
    scratch: str | Path = SCRATCH_DIR,
    environ: Mapping[str, str] | None = None,
    launch: Callable[[list[str]], int] = subprocess.call,
) -> int:
    """Fetch, train under torchrun, and publish on node 0; returns torchrun's exit status (0 on success)."""
    from skinattn.steps.training import collect_model_folder
    from skinattn.storage import fetch_folder, publish_folder

    pet = torchrun_environment(os.environ if environ is None else environ)
    rank = int(pet["PET_NODE_RANK"])
    scratch = Path(scratch)
    print(f"trainer node {rank} of {pet['PET_NNODES']}, {pet['PET_NPROC_PER_NODE']} process(es), master "
          f"{pet['PET_MASTER_ADDR']}:{pet['PET_MASTER_PORT']}", flush=True)  # fmt: skip
    files = fetch_folder(prepared_uri, scratch / "prepared")
    print(f"node {rank}: fetched {len(files)} files of {prepared_uri}", flush=True)
    command = torchrun_command(local_overrides(overrides, scratch))
    print(f"node {rank}: {' '.join(command)}", flush=True)
    code = launch(command)
    if code != 0:
        print(f"node {rank}: torchrun failed with exit status {code}", file=sys.stderr, flush=True)
        return code
    if rank == 0:
        model = collect_model_folder(scratch / "run", scratch / "model")
        written = publish_folder(model, publish_uri)
        print(f"node 0: published {len(written)} files of the model folder to {publish_uri}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skinattn.trainjob.node", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", required=True, help="the prepared data set (s3:// prefix or folder)")
    parser.add_argument("--publish", required=True, help="where node 0 puts the model folder (s3:// prefix or folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--scratch", default=os.environ.get("SKINATTN_SCRATCH_DIR", SCRATCH_DIR),
                        help=f"this node's working folder (default {SCRATCH_DIR}, an emptyDir of the pod)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return run_node(args.prepared, args.publish, args.overrides, scratch=args.scratch)
    except SkinattnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
