"""Running a pipeline in this process with kfp.local (no cluster): ``skinattn pipeline run --local``.

``SubprocessRunner(use_venv=False)`` runs each component in a subprocess of this interpreter, with the
installed skinattn; GPU and Kubernetes settings are ignored (kfp logs a warning for each). Outputs go under
``pipeline_root/<pipeline>-<timestamp>/<task>/<output>``.
"""

from pathlib import Path
from typing import Any

from skinattn_pipelines import _kfp_local, load_pipeline
from skinattn_pipelines.params import check_required


def run_local(name: str, arguments: dict[str, Any], pipeline_root: str | Path, runner: Any = None) -> Path:
    """Run pipeline ``name`` with ``arguments``; returns the run's output folder. Raises on failure.

    ``runner`` defaults to this interpreter (``SubprocessRunner(use_venv=False)``); ``make e2e`` passes a
    ``kfp.local.DockerRunner`` so that every component runs inside its container image instead.
    """
    from kfp import local

    pipeline = load_pipeline(name)
    check_required(pipeline, arguments)
    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in root.iterdir()}
    runner = runner if runner is not None else local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
    _kfp_local.install()  # dsl.OneOf of the two trainers' outputs (pipelines/_kfp_local.py)
    pipeline(**arguments)
    new = sorted((p for p in root.iterdir() if p.is_dir() and p.name not in before), key=lambda p: p.stat().st_mtime)
    if not new:
        raise RuntimeError(f"kfp.local finished but wrote no run folder under {root}")
    return new[-1]
