"""Run a command under a wall-clock limit, and kill its whole process group when the limit passes.

The pipelines' train step runs ``skinattn train`` (torchrun and one process per GPU, each with DataLoader
workers) this way: a hung NCCL collective or a stalled data read never returns to Python, so the limit is
enforced from outside the training processes. The command runs in a new session, so one signal reaches
torchrun, its workers and their loader processes together; SIGTERM first (torchrun forwards it and the
trainer can stop cleanly), SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from skinattn.errors import SkinattnError

# Time the processes get between SIGTERM and SIGKILL.
GRACE_S = 30.0


class DeadlineExceeded(SkinattnError):
    """The command ran past its limit and was stopped; the message says what and how long."""


def run_with_deadline(command: Sequence[str], limit_s: float | None, what: str) -> int:
    """Run ``command``; its exit status, or DeadlineExceeded after ``limit_s`` seconds (None: no limit).

    The whole process group is also killed when this process is interrupted (Ctrl-C under kfp.local), so no
    training process outlives the step.
    """
    process = subprocess.Popen(list(command), start_new_session=True)
    try:
        return process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        stop_group(process)
        raise DeadlineExceeded(
            f"{what} ran past its time limit of {limit_s / 3600:.4g} h and was stopped (every process of the "
            "group killed); raise the limit (train_timeout_hours) if the run needs longer"
        ) from None
    except BaseException:
        stop_group(process)
        raise


def stop_group(process: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM to the process's group, then SIGKILL to whatever is left after ``grace_s``."""
    if process.poll() is not None:
        _signal_group(process.pid, signal.SIGKILL)  # the leader is gone; its children may not be
        return
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:  # nothing left in the group
        pass
