"""Where training runs: device, precision, memory format, DataLoader settings, and DDP.

One code path serves CPU and CUDA; this module only decides the switches:

- CUDA: bf16 autocast (no loss scaler needed, unlike fp16), channels_last tensors, pinned host memory,
  DataLoader worker processes, optionally ``torch.compile``.
- CPU: fp32, contiguous tensors, no pinning, workers only when asked for.
- DDP: when launched by ``torchrun`` (``WORLD_SIZE`` > 1), one process per GPU (NCCL) or per CPU process
  (gloo); every rank trains on its shard of each epoch, and only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist

from skinattn.errors import SkinattnError
from skinattn.training.config import TrainSection

MAX_CUDA_WORKERS = 8


@dataclasses.dataclass(frozen=True)
class Runtime:
    """The resolved switches of one process of a run."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    pin_memory: bool
    num_workers: int
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and shows progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=self.pin_memory)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def describe(self) -> dict[str, object]:
        return {
            "device": str(self.device),
            "autocast": str(self.autocast_dtype).removeprefix("torch.") if self.autocast_dtype else "off",
            "channels_last": self.channels_last,
            "pin_memory": self.pin_memory,
            "num_workers": self.num_workers,
            "world_size": self.world_size,
        }


def resolve_runtime(train: TrainSection, num_workers: int | None) -> Runtime:
    """Decide the switches from the config, the hardware and the torchrun environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if train.device == "cuda" and not cuda:
        raise SkinattnError("train.device is 'cuda' but no CUDA device is visible (use 'auto' or 'cpu')")
    use_cuda = cuda and train.device != "cpu"
    if use_cuda:
        if world_size > 1:
            torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    else:
        device = torch.device("cpu")

    if train.precision == "bf16" or (train.precision == "auto" and use_cuda):
        autocast_dtype: torch.dtype | None = torch.bfloat16
    else:
        autocast_dtype = None
    channels_last = use_cuda if train.channels_last is None else train.channels_last
    if num_workers is None:
        # The processes sharing this machine's cores: those of this node (LOCAL_WORLD_SIZE under torchrun), not
        # all ranks of a multi-node run.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        per_process = (os.cpu_count() or 1) // max(1, local_world if use_cuda else 1)
        num_workers = min(MAX_CUDA_WORKERS, max(1, per_process - 1)) if use_cuda else 0
    return Runtime(device, autocast_dtype, channels_last, use_cuda, num_workers, rank, local_rank, world_size)


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)``; None leaves torch's default (one thread per core it sees).

    On a machine whose cores other work also uses, torch's default can be several times slower than fewer
    threads (it oversubscribes the cores: measured 2-5x slower than one thread on a loaded 2-core machine).
    Under DDP on CPU the setting is per process.
    """
    if threads is None:
        return
    if threads < 1:
        raise SkinattnError(f"threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def init_distributed(runtime: Runtime) -> None:
    """Join the process group torchrun set up (no-op for a single process)."""
    if runtime.distributed and not dist.is_initialized():
        backend = "nccl" if runtime.device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Sum a tensor over all ranks (identity for one process)."""
    if runtime.distributed:
        values = values.to(runtime.device)
        dist.all_reduce(values)
    return values.cpu()


def barrier(runtime: Runtime) -> None:
    if runtime.distributed:
        dist.barrier()


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; with ``deterministic``, ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # Needed by cuBLAS for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def main_process_first(runtime: Runtime) -> Iterator[None]:
    """Let the first process of each node (local rank 0; rank 0 on one node) do something (build a cache in a
    node-local folder) before the node's other processes do the same and find it done. Every rank passes one
    barrier: the first processes after the work, the others before it. On several nodes each node's first
    process works on its own copy (a TrainJob's nodes fetch the prepared set to their own disks)."""
    first = runtime.local_rank == 0
    if not first:
        barrier(runtime)
    yield
    if first:
        barrier(runtime)
