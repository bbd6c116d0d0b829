"""``trainer=trainjob`` in the compiled pipelines: the launcher branch beside the pod branch, no GPU on the
launcher, the placement fixed from infra/, one evaluate after either; and kfp.local joining the branches."""

# No `from __future__ import annotations`: the toy components below need live annotations (KFP reads them).

import json

import pytest
import yaml

from skinattn.trainjob.spec import Placement
from skinattn_pipelines import compile_pipeline


def _compiled(name: str, tmp_path) -> tuple[dict, dict]:
    path = compile_pipeline(name, str(tmp_path / f"{name}.yaml"))
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _dags(spec: dict) -> dict[str, dict]:
    return {name: c["dag"] for name, c in spec["components"].items() if "dag" in c} | {"root": spec["root"]["dag"]}


def _dag_holding(spec: dict, task: str) -> tuple[str, dict]:
    (found,) = [(name, dag) for name, dag in _dags(spec).items() if task in dag["tasks"]]
    return found


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_trainer_parameters_and_both_branches(name, tmp_path, clean_env):
    spec, _ = _compiled(name, tmp_path)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["trainer"]["parameterType"] == "STRING" and inputs["trainer"]["defaultValue"] == "pod"
    assert inputs["nodes"]["parameterType"] == "NUMBER_INTEGER" and inputs["nodes"]["defaultValue"] == 1
    assert "trainjob" in inputs["trainer"].get("description", "") and inputs["nodes"].get("description")

    trainjob_dag_name, _ = _dag_holding(spec, "train-trainjob")
    pod_dag_name, _ = _dag_holding(spec, "train")
    assert trainjob_dag_name != pod_dag_name
    # Both branches hang off one If/Else group, whose trigger conditions test the trainer parameter.
    parents = [(dag_name, task) for dag_name, dag in _dags(spec).items() for task in dag["tasks"].values()
               if task["componentRef"]["name"] in (trainjob_dag_name, pod_dag_name)]  # fmt: skip
    assert len({dag_name for dag_name, _ in parents}) == 1 and len(parents) == 2
    conditions = {task["componentRef"]["name"]: task["triggerPolicy"]["condition"] for _, task in parents}
    assert "'trainjob'" in conditions[trainjob_dag_name] and "trainer" in conditions[trainjob_dag_name]
    assert "!(" in conditions[pod_dag_name]  # the Else: every other value

    # evaluate reads the model of whichever branch ran (dsl.OneOf: one DAG output, two selectors).
    evaluate_dag_name, evaluate_dag = _dag_holding(spec, "evaluate")
    source = evaluate_dag["tasks"]["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]
    group = spec["components"][f"comp-{source['producerTask']}"]["dag"]
    selectors = group["outputs"]["artifacts"][source["outputArtifactKey"]]["artifactSelectors"]
    assert [f"comp-{s['producerSubtask']}" for s in selectors] == [trainjob_dag_name, pod_dag_name]


def test_the_launcher_is_light_and_knows_who_it_is(tmp_path, clean_env):
    from skinattn_components.cluster import s3_settings, task_timeouts
    from skinattn_components.image import component_image

    spec, platform = _compiled("training", tmp_path)
    launcher = spec["deploymentSpec"]["executors"]["exec-train-trainjob"]["container"]
    assert launcher["image"] == component_image()  # the CPU image
    assert "accelerator" not in launcher.get("resources", {})  # no GPU request
    k8s = platform["exec-train-trainjob"]
    assert "nodeSelector" not in k8s and "tolerations" not in k8s  # not on the GPU pool
    assert {e["name"]: e["fieldPath"] for e in k8s["fieldPathAsEnv"]} == {
        "SKINATTN_POD_NAME": "metadata.name", "SKINATTN_POD_UID": "metadata.uid",
        "SKINATTN_POD_NAMESPACE": "metadata.namespace",
    }  # fmt: skip
    assert k8s["configMapAsEnv"][0]["configMapName"] == s3_settings().config_map
    assert k8s["secretAsEnv"][0]["secretName"] == s3_settings().secret
    assert int(k8s["activeDeadlineSeconds"]) == task_timeouts().train
    _, dag = _dag_holding(spec, "train-trainjob")
    task = dag["tasks"]["train-trainjob"]
    assert task["retryPolicy"]["maxRetryCount"] == 2 and task["cachingOptions"]["enableCache"] is True
    # The pod branch is unchanged: GPU pool, GPU image.
    assert "accelerator" in spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]


def test_the_placement_is_fixed_from_infra(tmp_path, clean_env):
    from skinattn_components.cluster import gpu_node_pool, s3_settings
    from skinattn_components.image import gpu_image
    from skinattn_pipelines import _tasks

    spec, _ = _compiled("training", tmp_path)
    _, dag = _dag_holding(spec, "train-trainjob")
    constant = dag["tasks"]["train-trainjob"]["inputs"]["parameters"]["placement"]["runtimeValue"]["constant"]
    placement = Placement.from_json(constant)
    pool, s3 = gpu_node_pool(), s3_settings()
    assert placement.image == gpu_image() and placement.runtime == "torch-distributed"
    assert placement.node_selector == pool.node_selector() and list(placement.tolerations) == [pool.toleration()]
    assert (placement.config_map, placement.secret) == (s3.config_map, s3.secret)
    assert (placement.cpu_limit, placement.memory_limit, placement.shm_size) == (
        _tasks.TRAIN_CPU_LIMIT, _tasks.TRAIN_MEMORY_LIMIT, _tasks.SHM_SIZE_LIMIT)
    assert json.loads(constant) == json.loads(placement.to_json())  # nothing the launcher would drop


def test_the_launcher_takes_trains_inputs_and_gives_its_outputs():
    """Everything after the train step is written once for both trainers: an output added to ``train`` must
    be added to ``train-trainjob`` too (pipelines/_trainjob.py joins them by name)."""
    from skinattn_components.training import train
    from skinattn_components.trainjob import train_trainjob

    pod, launcher = train.component_spec, train_trainjob.component_spec
    assert {n: o.type for n, o in launcher.outputs.items()} == {n: o.type for n, o in pod.outputs.items()}
    assert {n: i.type for n, i in pod.inputs.items()}.items() <= {n: i.type for n, i in launcher.inputs.items()}.items()
    assert set(launcher.inputs) - set(pod.inputs) == {"nodes", "placement"}


def test_kfp_local_joins_oneof_artifacts_with_the_shim(tmp_path):
    """kfp.local 2.17 alone refuses a dsl.OneOf of artifacts; with the shim each run takes its branch's."""
    from kfp import dsl, local
    from kfp.dsl import Input, Model, Output

    from skinattn_pipelines import _kfp_local

    @dsl.component(base_image="python:3.11")
    def make(text: str, model: Output[Model]):
        open(model.path, "w").write(text)

    @dsl.component(base_image="python:3.11")
    def read(model: Input[Model]) -> str:
        return open(model.path).read()

    @dsl.pipeline
    def choose(mode: str = "pod") -> str:
        with dsl.If(mode == "trainjob"):
            a = make(text="from-trainjob")
        with dsl.Else():
            b = make(text="from-pod")
        return read(model=dsl.OneOf(a.outputs["model"], b.outputs["model"])).output

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    _kfp_local.install()
    _kfp_local.install()  # idempotent
    assert choose(mode="pod").output == "from-pod"
    assert choose(mode="trainjob").output == "from-trainjob"
