"""The batch-scoring pipeline compiles, and its IR carries the fan-out, GPU, caching and retry decisions."""

from __future__ import annotations

import pytest
import yaml

from skinattn_components.cluster import gpu_node_pool, s3_settings
from skinattn_components.image import component_image, gpu_image
from skinattn_pipelines import PIPELINES, compile_pipeline, load_pipeline
from skinattn_pipelines.batch_scoring import PARALLELISM
from skinattn_pipelines.params import check_required, parse_params
from skinattn.cli.pipeline import PIPELINE_NAMES

NAME = "batch_scoring"


@pytest.fixture
def compiled(tmp_path, clean_env) -> tuple[dict, dict]:
    path = compile_pipeline(NAME, str(tmp_path / f"{NAME}.yaml"))
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _dags(spec: dict) -> dict[str, dict]:
    """Every DAG of the pipeline (root, If/Else branches, loops) by component name, its tasks by task name."""
    dags = {"root": spec["root"]["dag"]["tasks"]}
    dags |= {name: c["dag"]["tasks"] for name, c in spec["components"].items() if "dag" in c}
    return dags


def _task_of(spec: dict, component: str) -> list[tuple[str, dict]]:
    """(owning DAG, task) of every task that runs ``component`` (``comp-<name>``)."""
    return [(dag, task) for dag, tasks in _dags(spec).items() for task in tasks.values()
            if task["componentRef"]["name"] == f"comp-{component}"]  # fmt: skip


def test_parameters_are_typed_and_all_have_defaults(compiled):
    spec, _ = compiled
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    types = {name: p["parameterType"] for name, p in inputs.items()}
    assert types == {
        "source_uri": "STRING", "model": "STRING", "registry_root": "STRING", "num_shards": "NUMBER_INTEGER",
        "batch_size": "NUMBER_INTEGER", "workers": "NUMBER_INTEGER", "gpus_per_shard": "NUMBER_INTEGER",
        "output_format": "STRING", "output_uri": "STRING", "bootstrap": "NUMBER_INTEGER",
    }  # fmt: skip
    assert inputs["model"]["defaultValue"] == "production" and inputs["gpus_per_shard"]["defaultValue"] == 0
    pipeline = load_pipeline(NAME)
    check_required(pipeline, {})  # the UI form and a schedule can start it as it is
    args = parse_params(pipeline, ["num_shards=3", "gpus_per_shard=1", "model=v7", "output_uri=s3://b/scores"])
    assert args == {"num_shards": 3, "gpus_per_shard": 1, "model": "v7", "output_uri": "s3://b/scores"}


def test_gpu_is_a_branch_on_gpus_per_shard_with_the_gpu_pool(compiled):
    spec, platform = compiled
    branches = _dags(spec)["comp-condition-branches-1"]
    by_name = {task["taskInfo"]["name"]: task for task in branches.values()}
    gpu_condition = by_name["score-on-gpu"]["triggerPolicy"]["condition"]
    assert "gpus_per_shard" in gpu_condition and gpu_condition.endswith("> 0")
    assert by_name["score-on-cpu"]["triggerPolicy"]["condition"] == f"!({gpu_condition})"

    executors = spec["deploymentSpec"]["executors"]
    pool = gpu_node_pool()
    gpu = executors["exec-score-shard-gpu"]["container"]
    assert gpu["image"] == gpu_image()
    assert gpu["resources"]["accelerator"]["resourceType"] == pool.resource
    count = gpu["resources"]["accelerator"]["resourceCount"]
    assert count == "{{$.inputs.parameters['pipelinechannel--gpus_per_shard']}}"
    assert pool.toleration() in platform["exec-score-shard-gpu"]["tolerations"]
    assert platform["exec-score-shard-gpu"]["nodeSelector"]["labels"] == pool.node_selector()
    for name, executor in executors.items():
        if name != "exec-score-shard-gpu":
            assert executor["container"]["image"] == component_image(), name
            assert "accelerator" not in executor["container"].get("resources", {}), name
            assert "nodeSelector" not in platform.get(name, {}) and "tolerations" not in platform.get(name, {}), name
        assert "pip install" not in " ".join(executor["container"]["command"]), name
        assert platform[name]["configMapAsEnv"][0]["configMapName"] == s3_settings().config_map, name
        assert platform[name]["secretAsEnv"][0]["secretName"] == s3_settings().secret, name
    for name in ("exec-score-shard", "exec-score-shard-gpu"):
        resources = executors[name]["container"]["resources"]
        assert resources["resourceCpuRequest"] and resources["resourceMemoryLimit"], name
        assert {"mountPath": "/dev/shm", "medium": "Memory"}.items() <= platform[name]["emptyDirMounts"][0].items()


def test_each_branch_fans_out_over_the_shards_and_merges_them(compiled):
    spec, _ = compiled
    dags = _dags(spec)
    for score in ("score-shard", "score-shard-gpu"):
        [(loop, score_task)] = _task_of(spec, score)
        # the loop iterates over the manifest names shard-archive returned, PARALLELISM at a time
        [(branch, loop_key, loop_task)] = [(d, key, t) for d, tasks in dags.items() for key, t in tasks.items()
                                           if t["componentRef"]["name"] == loop]  # fmt: skip
        assert loop_task["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--shard-archive-Output"
        assert loop_task["iteratorPolicy"]["parallelismLimit"] == PARALLELISM
        model = score_task["inputs"]["parameters"]["model"]["componentInputParameter"]
        assert model == "pipelinechannel--resolve-scoring-model-Output"  # resolved once, upstream
        assert score_task["cachingOptions"]["enableCache"] is True
        assert score_task["retryPolicy"]["maxRetryCount"] == 2
        # the merge of the same branch collects this loop's outputs
        # (the two branches' merges compile to comp-merge-scores and comp-merge-scores-2)
        [merge] = [t for t in dags[branch].values() if t["componentRef"]["name"].startswith("comp-merge-scores")]
        collected = merge["inputs"]["artifacts"]["scored"]["taskOutputArtifact"]
        assert collected["producerTask"] == loop_key and collected["outputArtifactKey"].endswith("scored")
        assert merge["cachingOptions"].get("enableCache", False) is False
        assert "retryPolicy" not in merge  # deterministic refusals; a retried run finds the shards cached
    root = spec["root"]["dag"]["tasks"]
    for name in ("resolve-scoring-model", "shard-archive"):
        assert root[name]["cachingOptions"].get("enableCache", False) is False, name
        assert "retryPolicy" not in root[name], name  # a wrong URI or version fails the same way every time
    outputs = spec["components"]["comp-merge-scores"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {
        "predictions": "system.Dataset", "errors": "system.Dataset", "summary": "system.Markdown",
        "metrics": "system.Metrics", "classification": "system.ClassificationMetrics",
    }  # fmt: skip


def test_cli_knows_every_pipeline():
    assert set(PIPELINE_NAMES) == set(PIPELINES) and NAME in PIPELINE_NAMES
