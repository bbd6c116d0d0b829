"""What a trainer node runs (``python -m skinattn.trainjob.node``): the runtime's PET_* environment, the
prepared copy, torchrun, and node 0's publication of the model folder. The slow test runs two real nodes
on this machine (two node commands, torchrun's static rendezvous on 127.0.0.1, gloo) exactly as the
torch-distributed runtime starts them, and checks the ranks, the world size and what node 0 published."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from skinattn.errors import SkinattnError
from skinattn.steps.training import RUN_FILES, training_overrides
from skinattn.trainjob import node

PET = {"PET_NNODES": "2", "PET_NPROC_PER_NODE": "1", "PET_NODE_RANK": "0", "PET_MASTER_ADDR": "trainjob-node-0-0.trainjob",
       "PET_MASTER_PORT": "29500"}  # fmt: skip
SETTINGS = dict(arch="resnet10t", soft_attention=True, image_size=32, epochs=1, batch_size=8, lr=0.01, seed=0)


def _fake_torchrun(run_seen: list) -> callable:
    """Stands in for torchrun + ``skinattn train``: writes the run folder rank 0 would write."""
    def launch(command: list[str]) -> int:
        run_seen.append(command)
        out = Path(json.loads(next(c.split("=", 1)[1] for c in command if c.startswith("out_dir="))))
        (out / "model").mkdir(parents=True)
        (out / "model" / "model.safetensors").write_bytes(b"\0")
        (out / "model" / "model.json").write_text("{}")
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "last.pt").write_bytes(b"\0")  # not part of the artifact
        for name in RUN_FILES:
            (out / name).write_text("{}")
        return 0
    return launch


def test_refuses_to_run_outside_the_runtime():
    with pytest.raises(SkinattnError, match="PET_NODE_RANK, PET_MASTER_ADDR not set"):
        node.torchrun_environment({k: v for k, v in PET.items() if k not in ("PET_NODE_RANK", "PET_MASTER_ADDR")})
    assert node.main(["--prepared", "x", "--publish", "y"]) == 2  # one line on stderr, no traceback


def test_torchrun_gets_no_rendezvous_option_it_reads_them_from_pet():
    command = node.torchrun_command(["a=1"])
    assert command[1:] == ["-m", "torch.distributed.run", "-m", "skinattn", "train", "--set", "a=1"]
    assert not any(arg.startswith(("--nnodes", "--node", "--master", "--rdzv", "--nproc")) for arg in command)


def test_torchrun_accepts_the_commands_we_give_it():
    """torchrun's argparse classifies every argument, also those after the module: one that is a prefix of a
    torchrun option (``--nproc``) makes it refuse to start. Both relaunch commands must parse."""
    from torch.distributed.run import get_args_parser

    for command in (node.torchrun_command(['train.seed=1', 'out_dir="/x"']),
                    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                     "skinattn", "train", "--config", "c.yaml", "--set", "a=1", "--resume"]):  # fmt: skip
        args = get_args_parser().parse_args(command[3:])
        assert args.module and args.training_script == "skinattn" and args.training_script_args[0] == "train"


def test_torchrun_reads_every_pet_variable_it_is_given():
    """The runtime's names are torchrun's own: PET_<OPTION> is each option's default (argparse_util.env)."""
    from torch.distributed.run import get_args_parser

    env = {**os.environ, **PET}
    saved = {k: os.environ.get(k) for k in PET}
    os.environ.update(PET)
    try:
        args = get_args_parser().parse_args(["-m", "skinattn"])
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert (args.nnodes, args.nproc_per_node, args.node_rank) == ("2", "1", 0)
    assert (args.master_addr, args.master_port) == (env["PET_MASTER_ADDR"], 29500)


def test_node_paths_replace_the_launchers(tmp_path):
    overrides = training_overrides("/scratch/prepared", "/scratch/run", **SETTINGS)
    local = node.local_overrides(overrides, tmp_path)
    assert f'data.prepared="{tmp_path}/prepared"' in local and f'out_dir="{tmp_path}/run"' in local
    assert [o for o in local if o.startswith(("data.prepared", "out_dir"))] == local[-2:]
    assert set(overrides) - set(local) == {'data.prepared="/scratch/prepared"', 'out_dir="/scratch/run"'}


@pytest.mark.parametrize("rank", ["0", "1"])
def test_node_fetches_trains_and_only_node_0_publishes(tmp_path, rank):
    prepared = tmp_path / "prepared-src"
    (prepared / "cache").mkdir(parents=True)
    (prepared / "manifest.csv").write_text("image_id\n")
    (prepared / "cache" / "images.npy").write_bytes(b"\1" * 1000)
    seen: list = []
    code = node.run_node(str(prepared), str(tmp_path / "published"), training_overrides("/scratch/prepared", "/scratch/run", **SETTINGS),
                         scratch=tmp_path / "scratch", environ={**PET, "PET_NODE_RANK": rank}, launch=_fake_torchrun(seen))  # fmt: skip
    assert code == 0 and len(seen) == 1
    assert (tmp_path / "scratch" / "prepared" / "cache" / "images.npy").read_bytes() == b"\1" * 1000
    if rank == "0":
        published = sorted(p.name for p in (tmp_path / "published").iterdir())
        assert published == sorted(["model.safetensors", "model.json", *RUN_FILES])  # as the pod path's artifact
    else:
        assert not (tmp_path / "published").exists()


def test_a_failed_torchrun_publishes_nothing(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("x")
    code = node.run_node(str(tmp_path / "src"), str(tmp_path / "published"), [], scratch=tmp_path / "s",
                         environ=PET, launch=lambda command: 3)  # fmt: skip
    assert code == 3 and not (tmp_path / "published").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory) -> Path:
    import pandas as pd

    from skinattn.constants import HAM10000_CLASSES
    from skinattn.data.prepare import prepare
    from skinattn.data.schema import ManifestInfo, write_manifest
    from skinattn.data.synthetic import make_sample_dataset

    root = tmp_path_factory.mktemp("trainjob-data")
    make_sample_dataset(root / "images", per_class=8, size=32, seed=0)
    meta = pd.read_csv(root / "images" / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    frame = pd.DataFrame({"image_id": meta["image_id"], "image_path": [str(root / "images" / f"{i}.jpg") for i in meta["image_id"]],
                          "label": meta["dx"], "lesion_id": meta["lesion_id"]})  # fmt: skip
    write_manifest(frame, ManifestInfo(classes=list(HAM10000_CLASSES), format="ham10000", source="synthetic"), root / "manifest")
    prepare(root / "manifest", root / "prepared", cache_size=32, progress=False)
    return root / "prepared"


@pytest.mark.slow
def test_two_nodes_train_one_ddp_run_and_node_0_publishes(tiny_prepared, tmp_path):
    """Two node commands with the variables the runtime gives them (node ranks 0 and 1, one process each,
    master = node 0): one DDP run of world size 2 over gloo; node 0 publishes the model folder."""
    overrides = training_overrides("/scratch/prepared", "/scratch/run", **SETTINGS)
    overrides += ['train.device="cpu"', "data.num_workers=0"]
    args = node.node_args(str(tiny_prepared), str(tmp_path / "published"), overrides)
    port = str(_free_port())
    processes = []
    for rank in ("0", "1"):
        env = {**os.environ, **PET, "PET_NODE_RANK": rank, "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": port,
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
            env.pop(key, None)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "skinattn.trainjob.node", *args, "--scratch", str(tmp_path / f"node{rank}")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], "\n----\n".join(outputs)
    assert "trainer node 0 of 2, 1 process(es), master 127.0.0.1" in outputs[0]
    assert "published" in outputs[0] and "published" not in outputs[1]
    summary = json.loads((tmp_path / "published" / "summary.json").read_text())
    assert summary["runtime"]["world_size"] == 2 and summary["epochs_run"] == 1
    assert sorted(p.name for p in (tmp_path / "published").iterdir()) == sorted(["model.safetensors", "model.json", *RUN_FILES])
    assert not (tmp_path / "node1" / "run" / "summary.json").exists()  # only global rank 0 writes the run folder
