"""Every pipeline compiles, and the IR carries the GPU, scheduling, retry and caching decisions."""

from __future__ import annotations

import pytest
import yaml

from skinattn_components.cluster import gpu_node_pool, s3_settings
from skinattn_components.image import component_image, gpu_image
from skinattn_pipelines import PIPELINES, compile_pipeline


def _compiled(name: str, tmp_path) -> tuple[dict, dict]:
    path = compile_pipeline(name, str(tmp_path / f"{name}.yaml"))
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"] if len(docs) > 1 else {}
    return docs[0], platform


def _by_display_name(spec: dict, name: str) -> tuple[str, dict]:
    """A root task by its display name (``name=`` of If/ParallelFor): its IR key and its spec."""
    for key, task in spec["root"]["dag"]["tasks"].items():
        if task["taskInfo"]["name"] == name:
            return key, task
    raise AssertionError(f"no task named {name!r} at the pipeline's top level")


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of the pipeline, nested DAGs (If, ParallelFor) included, by task name."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


# The pipelines that train; batch_scoring has its own checks in test_batch_scoring_compile.py.
@pytest.mark.parametrize("name", sorted(set(PIPELINES) - {"batch_scoring"}))
def test_pipeline_compiles_with_project_images_and_gpu_train(name, tmp_path, clean_env):
    spec, platform = _compiled(name, tmp_path)
    executors = spec["deploymentSpec"]["executors"]
    pool = gpu_node_pool()
    train = executors["exec-train"]["container"]
    assert train["image"] == gpu_image()
    accelerator = train["resources"]["accelerator"]
    assert accelerator["resourceType"] == pool.resource == "nvidia.com/gpu"
    assert accelerator["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--gpus']}}"
    assert train["resources"]["resourceCpuRequest"] and train["resources"]["resourceMemoryLimit"]
    for executor_name, executor in executors.items():
        if executor_name != "exec-train":
            assert executor["container"]["image"] == component_image(), executor_name
            assert "accelerator" not in executor["container"].get("resources", {}), executor_name
        # install_kfp_package=False: the image brings kfp, nothing is pip-installed at run time
        assert "pip install" not in " ".join(executor["container"]["command"]), executor_name

    k8s_train = platform["exec-train"]
    assert pool.toleration() in k8s_train["tolerations"]
    assert k8s_train["nodeSelector"]["labels"] == pool.node_selector()
    assert {"mountPath": "/dev/shm", "medium": "Memory"}.items() <= k8s_train["emptyDirMounts"][0].items()
    s3 = s3_settings()
    for executor_name in ("exec-ingest", "exec-train", "exec-evaluate"):
        assert platform[executor_name]["configMapAsEnv"][0]["configMapName"] == s3.config_map
        assert platform[executor_name]["secretAsEnv"][0]["secretName"] == s3.secret

    tasks = _tasks(spec)
    assert "retryPolicy" not in tasks["ingest"]  # a wrong URI fails in seconds, not after minutes of retries
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 2
    assert tasks["train"]["retryPolicy"]["backoffFactor"] == 2.0
    assert tasks["ingest"]["cachingOptions"].get("enableCache", False) is False
    assert tasks["train"]["cachingOptions"]["enableCache"] is True


def test_training_pipeline_gates_registration_on_the_comparison(tmp_path, clean_env):
    spec, _ = _compiled("training", tmp_path)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    expected = {"data_uri", "data_format", "arch", "soft_attention", "image_size", "epochs", "batch_size", "lr",
                "seed", "gpus", "promotion_metric", "registry_root"}  # fmt: skip
    assert expected <= set(inputs)
    assert inputs["gpus"]["parameterType"] == "NUMBER_INTEGER" and inputs["soft_attention"]["parameterType"] == "BOOLEAN"
    _, condition = _by_display_name(spec, "better-than-production")
    assert "compare-with-production" in condition["triggerPolicy"]["condition"]
    assert "'promote'" in condition["triggerPolicy"]["condition"]
    tasks = _tasks(spec)
    assert "register" in tasks and "register" not in spec["root"]["dag"]["tasks"]  # only inside the If
    assert tasks["compare-with-production"]["cachingOptions"].get("enableCache", False) is False
    assert tasks["register"]["cachingOptions"].get("enableCache", False) is False
    run_id = tasks["register"]["inputs"]["parameters"]["run_id"]["runtimeValue"]["constant"]
    assert run_id == "{{$.pipeline_job_uuid}}"


@pytest.mark.parametrize("name", ["training", "ablation"])
def test_evaluate_gets_the_external_test_set_of_the_form(name, tmp_path, clean_env):
    """Issue 14: the external test set is a parameter of the run form that reaches every evaluate task; the
    training pipeline's gate and register get the promotion source."""
    spec, _ = _compiled(name, tmp_path)
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["external_test_uri"]["defaultValue"] == "" and parameters["external_test_uri"]["isOptional"]
    assert parameters["external_test_format"]["defaultValue"] == "isic-archive"
    tasks = _tasks(spec)
    for key in ("external_test_uri", "external_test_format"):
        assert tasks["evaluate"]["inputs"]["parameters"][key]["componentInputParameter"].endswith(key)
    if name == "training":
        assert parameters["promotion_source"]["defaultValue"] == "internal"
        for task in ("compare-with-production", "register"):
            source = tasks[task]["inputs"]["parameters"]["promotion_source"]["componentInputParameter"]
            assert source.endswith("promotion_source")


def test_ablation_pipeline_fans_out_over_configs_x_seeds_and_collects(tmp_path, clean_env):
    spec, _ = _compiled("ablation", tmp_path)
    root = spec["root"]["dag"]["tasks"]
    # configs x seeds are expanded by one task, whose list the loop iterates over
    cells = root["ablation-cells"]["inputs"]["parameters"]
    assert {name: p["componentInputParameter"] for name, p in cells.items()} == {
        "configs": "configs", "seeds": "seeds", "seed": "seed",
    }  # fmt: skip
    loop_key, loop = _by_display_name(spec, "architectures-x-seeds")
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--ablation-cells-Output"
    assert loop["iteratorPolicy"]["parallelismLimit"] >= 1
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    default = parameters["configs"]["defaultValue"]
    assert len(default) == 10 and {c["soft_attention"] for c in default} == {True, False}
    assert parameters["seeds"]["parameterType"] == "NUMBER_INTEGER" and parameters["seeds"]["defaultValue"] == 3
    assert parameters["split_protocol"]["defaultValue"] == "grouped"
    # the split protocol reaches prepare; each cell trains with its own seed, not the split seed
    assert root["prepare"]["inputs"]["parameters"]["split_protocol"]["componentInputParameter"] == "split_protocol"
    train = _tasks(spec)["train"]["inputs"]["parameters"]["seed"]
    assert train["componentInputParameter"] == "pipelinechannel--ablation-cells-Output-loop-item"
    assert train["parameterExpressionSelector"] == 'parseJson(string_value)["seed"]'
    table = root["ablation-table"]["inputs"]
    assert table["artifacts"]["evaluations"]["taskOutputArtifact"]["producerTask"] == loop_key
    assert table["parameters"]["bootstrap"]["componentInputParameter"] == "bootstrap"
    outputs = spec["components"]["comp-ablation-table"]["outputDefinitions"]["artifacts"]
    assert outputs["report"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["table"]["artifactType"]["schemaTitle"] == "system.Markdown"


def test_train_task_shows_its_training_curves_as_an_html_artifact(tmp_path, clean_env):
    spec, _ = _compiled("training", tmp_path)
    outputs = spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]
    assert outputs["curves"]["artifactType"]["schemaTitle"] == "system.HTML"
    assert outputs["model"]["artifactType"]["schemaTitle"] == "system.Model"
