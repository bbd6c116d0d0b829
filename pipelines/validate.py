"""The CLI's pre-flight check of a run: ``--param`` items typed, defaults merged in, every value checked.

``skinattn pipeline run --local``, ``submit``, ``upload`` (the pipeline's defaults, which a UI form starts
from) and ``schedule`` call :func:`checked_arguments` before anything is compiled, sent or run. The rules
are ``skinattn.run_parameters``, the same ones the pipelines' first step applies on the cluster; what this
module adds is the pipeline's signature (types, defaults, required parameters) and the compile-time train
deadline. Every problem, from a value that does not parse to an unknown architecture, is named in ONE
error (``skinattn.run_parameters.ParameterError``, exit 2 from the CLI).
"""

import sys
from typing import Any

from skinattn.run_parameters import ParameterError, Reach, check_parameters
from skinattn_pipelines import load_pipeline
from skinattn_pipelines.params import parse_params, required_parameters


def defaults(pipeline) -> dict[str, Any]:
    """``{name: default}`` of a pipeline's parameters that have one."""
    inputs = pipeline.component_spec.inputs or {}
    return {name: spec.default for name, spec in inputs.items() if spec.default is not None}


def checked_arguments(name: str, items: list[str], *, reach: Reach, local_paths: bool = False) -> dict[str, Any]:
    """The typed arguments of ``--param`` items for pipeline ``name``, once they and the defaults they leave
    in place pass every check; else ParameterError naming every problem. Warnings go to stderr.

    ``reach`` and ``local_paths``: see ``skinattn.run_parameters`` (``client`` and True for ``run --local``,
    ``client`` for submit and schedule, ``offline`` for upload).
    """
    from skinattn_components.cluster import task_timeouts

    pipeline = load_pipeline(name)
    problems: list[Any] = []
    arguments = parse_params(pipeline, items, problems)
    problems += [f"{missing}: required, pass --param {missing}=VALUE" for missing in required_parameters(pipeline)
                 if missing not in arguments]  # fmt: skip
    report = check_parameters(defaults(pipeline) | arguments, reach=reach, local_paths=local_paths,
                              train_deadline_hours=task_timeouts().train_hours)  # fmt: skip
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    problems += report.problems
    if problems:
        raise ParameterError(name, problems)
    return arguments
