"""Concurrent registrations and promotions never lose a version nor corrupt the production log.

Threads share one process; the process test runs separate ``skinattn registry register`` commands at
once, which is what parallel pipeline runs do. Both run against the local folder and the S3 server.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from _registry_helpers import PYTHON, cli_env

from skinattn.registry import Registry


def test_threads_registering_at_once_all_get_distinct_versions(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    runs = 8
    metrics = [write_metrics(accuracy=0.5 + i / 100) for i in range(runs)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=runs) as pool:
        # Each thread opens its own Registry, as separate pipeline steps would.
        futures = [
            pool.submit(Registry(registry.uri).register, model_dir, metrics[i], run_id=f"run-{i}") for i in range(runs)
        ]
        returned = [f.result() for f in futures]

    assert sorted(v.number for v in returned) == list(range(1, runs + 1))
    listed = registry.versions()
    assert [v.number for v in listed] == list(range(1, runs + 1))
    # Every run's version is listed with that run's own metrics: nothing was overwritten or mixed up.
    by_run = {v.run_id: v.metrics["accuracy"] for v in listed}
    assert by_run == {f"run-{i}": 0.5 + i / 100 for i in range(runs)}


def test_concurrent_promotions_end_with_the_best_and_a_consistent_log(
    registry: Registry, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    scores = [0.61, 0.74, 0.66, 0.79, 0.70, 0.63]
    versions = [registry.register(model_dir, write_metrics(auc=score)).version for score in scores]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(versions)) as pool:
        decisions = list(pool.map(lambda v: Registry(registry.uri).promote(v, "auc"), versions))

    best = versions[scores.index(max(scores))]
    assert registry.production().version == best
    log = registry.promotions()
    assert [p.sequence for p in log] == list(range(1, len(log) + 1))
    # Each entry replaced the entry before it, and strictly improved on it: no promotion was judged
    # against a stale champion.
    for before, after in zip(log, log[1:], strict=False):
        assert after.previous == before.version and after.previous_value == before.value
        assert after.value > before.value
    assert sum(d.promoted for d in decisions) == len(log)



def _register_in_child(root: str, model_dir: Path, metrics: Path, run_id: str) -> str:
    return Registry(root).register(model_dir, metrics, run_id=run_id).version


def test_forked_processes_registering_at_once_all_get_distinct_versions(
    registry_root: str, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    runs = 6
    metrics = [write_metrics(accuracy=0.6 + i / 100) for i in range(runs)]
    # fork: the children inherit the already-imported libraries, so the test stays fast; each child has
    # its own interpreter state and file descriptors, so the only thing they share is the storage.
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(runs, context) as pool:
        returned = list(pool.map(_register_in_child, [registry_root] * runs, [model_dir] * runs, metrics,
                                 [f"proc-{i}" for i in range(runs)]))

    listed = Registry(registry_root).versions()
    assert sorted(returned) == sorted(v.version for v in listed)
    assert [v.number for v in listed] == list(range(1, runs + 1))
    assert sorted(v.run_id for v in listed) == [f"proc-{i}" for i in range(runs)]


@pytest.mark.slow  # four interpreters importing torch at once on a small machine: ~25 s
def test_cli_processes_registering_at_once_all_get_distinct_versions(
    registry_root: str, model_dir: Path, write_metrics: Callable[..., Path]
) -> None:
    runs = 4
    commands = [
        [PYTHON, "-m", "skinattn", "registry", "register", str(model_dir), "--root", registry_root,
         "--metrics", str(write_metrics(accuracy=0.6 + i / 100)), "--run-id", f"proc-{i}"]
        for i in range(runs)
    ]
    procs = [subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for cmd in commands]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * runs, [err for _, err in outputs]

    listed = Registry(registry_root).versions()
    assert [v.number for v in listed] == list(range(1, runs + 1))
    assert sorted(v.run_id for v in listed) == [f"proc-{i}" for i in range(runs)]
    assert sorted(out.split()[1] for out, _ in outputs) == sorted(v.version for v in listed)
