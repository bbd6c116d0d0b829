"""The Kubeflow pipelines of skinattn, and what the ``skinattn pipeline`` commands do with them.

``pipelines/`` is a top-level package beside ``skinattn`` (installed with it in editable mode): compiling
reads ``infra/image.env`` and ``infra/cluster.env``, so it works from a checkout of the repository. The
container images only need ``skinattn``: component bodies import nothing from here.

Modules: ``training``, ``ablation`` and ``batch_scoring`` (one ``@dsl.pipeline`` each), ``_tasks`` (GPU, S3, /dev/shm,
retry and timeout settings), ``params`` (typed ``key=value`` parameters), ``validate`` (the CLI's check of a
run's parameters before anything is scheduled), ``cron`` (schedule validation), ``remote``
(kfp.Client calls), ``local`` (kfp.local runs), ``demo`` (``make demo``: the training pipeline on kfp.local
on synthetic data). To add a pipeline: write ``pipelines/<name>.py`` with one ``@dsl.pipeline`` and list it
in ``PIPELINES``; ``skinattn pipeline compile`` and the tests then pick it up.
"""

import importlib

# name → (module, attribute) of every pipeline the CLI knows.
PIPELINES: dict[str, tuple[str, str]] = {
    "training": ("skinattn_pipelines.training", "training_pipeline"),
    "ablation": ("skinattn_pipelines.ablation", "ablation_pipeline"),
    "batch_scoring": ("skinattn_pipelines.batch_scoring", "batch_scoring_pipeline"),
}


class PipelineError(ValueError):
    """A pipeline name, parameter or schedule the user gave is not valid; the message says why."""


def load_pipeline(name: str):
    """The ``@dsl.pipeline`` object called ``name`` (see ``PIPELINES``)."""
    if name not in PIPELINES:
        raise PipelineError(f"unknown pipeline {name!r}; choose from {sorted(PIPELINES)}")
    module, attribute = PIPELINES[name]
    return getattr(importlib.import_module(module), attribute)


def compile_pipeline(name: str, package_path: str, pipeline_root: str | None = None) -> str:
    """Compile one pipeline to a YAML package; returns the path.

    ``pipeline_root`` becomes the package's ``defaultPipelineRoot``, which runs of an uploaded version (from
    the UI or a schedule) use unless the run sets its own. kfp 2.17's ``Compiler.compile`` takes no pipeline
    root (only ``@dsl.pipeline(pipeline_root=...)`` at definition time, fixed at import), so it is set on a
    copy of the compiled spec: the imported pipeline stays as defined.
    """
    import copy

    from kfp import compiler

    pipeline = load_pipeline(name)
    if pipeline_root:
        pipeline = copy.deepcopy(pipeline)
        pipeline.pipeline_spec.default_pipeline_root = pipeline_root
    compiler.Compiler().compile(pipeline, package_path)
    return package_path
