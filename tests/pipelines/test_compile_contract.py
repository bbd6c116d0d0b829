"""What every compiled pipeline promises a Kubeflow user (issue 12, items 1-3), read from the compiled YAML:
a validation step first, with no retry and no cache, that every other task waits for; retries only where
preemption is the likely failure; a time limit (activeDeadlineSeconds) on every task; a description of
every parameter in the run form.
"""

from __future__ import annotations

import pytest
import yaml

from skinattn_components.cluster import task_timeouts
from skinattn_pipelines import PIPELINES, compile_pipeline

FIRST_STEP = {"training": "validate-training-run", "ablation": "validate-ablation-run",
              "batch_scoring": "validate-batch-scoring-run"}  # fmt: skip
# The expensive steps whose failure is most likely a preempted node; nothing else is retried.
RETRIED = {"train", "train-trainjob", "score-shard", "score-shard-gpu"}


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def compiled(request, tmp_path_factory):
    path = compile_pipeline(request.param, str(tmp_path_factory.mktemp("ir") / f"{request.param}.yaml"))
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
    return request.param, docs[0], platform


def _all_tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_validation_is_the_first_task_and_everything_waits_for_it(compiled):
    name, spec, _ = compiled
    root = spec["root"]["dag"]["tasks"]
    first = FIRST_STEP[name]
    assert first in root and not root[first].get("dependentTasks"), "the validation step must depend on nothing"
    assert "retryPolicy" not in root[first], "a bad parameter must not be retried"
    assert root[first]["cachingOptions"].get("enableCache", False) is False, "data and cluster change between runs"
    # every other top-level task (If / ParallelFor groups included) runs after it, directly or through others
    graph = {key: set(task.get("dependentTasks", [])) for key, task in root.items()}

    def upstream(key: str, seen: set[str]) -> set[str]:
        for parent in graph[key] - seen:
            seen |= {parent} | upstream(parent, seen | {parent})
        return seen

    for key in set(root) - {first}:
        assert first in upstream(key, set()), f"{name}: {key} does not wait for {first}"


def test_validation_step_checks_the_same_parameters_the_run_form_has(compiled):
    name, spec, _ = compiled
    inputs = spec["root"]["dag"]["tasks"][FIRST_STEP[name]]["inputs"]["parameters"]
    form = set(spec["root"]["inputDefinitions"]["parameters"])
    passed = {key for key, value in inputs.items() if "componentInputParameter" in value}
    assert passed == form, "every parameter of the form goes through the validation step"
    constants = {key: value["runtimeValue"]["constant"] for key, value in inputs.items() if "runtimeValue" in value}
    assert constants["gpu_resource"] == "nvidia.com/gpu"
    assert constants["gpu_node_selector"] == "nvidia.com/gpu.present=true"
    if name != "batch_scoring":
        assert constants["train_deadline_hours"] == task_timeouts().train_hours


def test_only_preemptible_expensive_steps_are_retried(compiled):
    name, spec, _ = compiled
    retried = {key for key, task in _all_tasks(spec).items() if "retryPolicy" in task}
    assert retried <= RETRIED and retried, f"{name}: retried {sorted(retried)}"


def test_every_task_has_a_time_limit(compiled, clean_env):
    name, spec, platform = compiled
    limits = task_timeouts()
    for executor in spec["deploymentSpec"]["executors"]:
        seconds = platform.get(executor, {}).get("activeDeadlineSeconds")
        assert seconds and int(seconds) > 0, f"{name}: {executor} has no activeDeadlineSeconds"
    assert int(platform[f"exec-{FIRST_STEP[name]}"]["activeDeadlineSeconds"]) == limits.check
    if "exec-train" in platform:
        assert int(platform["exec-train"]["activeDeadlineSeconds"]) == limits.train
        train = _all_tasks(spec)["train"]["inputs"]["parameters"]["timeout_hours"]
        assert train["componentInputParameter"].endswith("train_timeout_hours")  # the parameter, at run time


def test_every_parameter_has_a_description(compiled):
    name, spec, _ = compiled
    for parameter, definition in spec["root"]["inputDefinitions"]["parameters"].items():
        assert definition.get("description", "").strip(), f"{name}: parameter {parameter} has no description"


def test_time_limits_follow_cluster_env_and_its_overrides(clean_env, tmp_path):
    """The pipelines are built when their modules are imported, so an override is an environment variable of
    the command that compiles (``SKINATTN_TIMEOUT_TRAIN=36h skinattn pipeline submit ...``)."""
    import os
    import subprocess
    import sys

    from skinattn_components.envfile import ConventionFileError

    assert task_timeouts().train == 7 * 86400 and task_timeouts().check == 15 * 60
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKINATTN_TIMEOUT_")}
    result = subprocess.run([sys.executable, "-m", "skinattn", "pipeline", "compile", "--out", str(tmp_path)],
                            env=env | {"SKINATTN_TIMEOUT_TRAIN": "36h"}, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all((tmp_path / "training.yaml").read_text(encoding="utf-8")) if d]
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert int(executors["exec-train"]["activeDeadlineSeconds"]) == 36 * 3600
    validate = docs[0]["root"]["dag"]["tasks"]["validate-training-run"]["inputs"]["parameters"]
    assert validate["train_deadline_hours"]["runtimeValue"]["constant"] == 36.0  # the check follows the bound
    clean_env.setenv("SKINATTN_TIMEOUT_STEP", "6 hours")
    with pytest.raises(ConventionFileError, match="SKINATTN_TIMEOUT_STEP='6 hours'"):
        task_timeouts()
