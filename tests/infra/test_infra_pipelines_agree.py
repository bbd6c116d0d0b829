"""Compiled pipelines use the images of infra/image.env and the GPU node-pool convention of infra/cluster.env.

Every ``@dsl.pipeline`` object found in a ``pipelines/*.py`` module is compiled; the test skips, saying so,
while no pipeline exists yet.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from skinattn_components import cluster, image

REPO_ROOT = Path(__file__).resolve().parents[2]


def discover_pipelines():
    from kfp.dsl.graph_component import GraphComponent

    found = []
    for path in sorted((REPO_ROOT / "pipelines").glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = importlib.import_module(f"skinattn_pipelines.{path.stem}")
        found += [(f"{path.stem}.{name}", obj) for name, obj in vars(module).items() if isinstance(obj, GraphComponent)]
    return found


def test_compiled_pipelines_agree_with_infra(tmp_path, clean_env):
    from kfp import compiler

    pipelines = discover_pipelines()
    if not pipelines:
        pytest.skip("pipelines/ defines no @dsl.pipeline yet (issue 5); nothing to compare with infra/")
    allowed_images = {image.component_image(), image.gpu_image()}
    pool = cluster.gpu_node_pool()
    for name, pipeline in pipelines:
        package = tmp_path / f"{name}.yaml"
        compiler.Compiler().compile(pipeline, str(package))
        docs = [d for d in yaml.safe_load_all(package.read_text()) if d]
        executors = docs[0]["deploymentSpec"]["executors"]
        platform = {}
        for doc in docs[1:]:
            platform.update(doc.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {}))
        for executor_name, executor in executors.items():
            container = executor.get("container")
            if container is None:  # importers and resolvers run no project code
                continue
            where = f"{name}: executor {executor_name}"
            assert container["image"] in allowed_images, f"{where} runs {container['image']}, not an infra/image.env image"
            accelerator = container.get("resources", {}).get("accelerator", {})
            if accelerator.get("resourceType", accelerator.get("type")) != pool.resource:
                continue
            assert container["image"] == image.gpu_image(), f"{where} requests a GPU but does not run the GPU image"
            k8s = platform.get(executor_name, {})
            tolerations = [{k: t[k] for k in ("key", "operator", "value", "effect") if k in t} for t in k8s.get("tolerations", [])]
            assert pool.toleration() in tolerations, f"{where}: tolerations {tolerations} lack {pool.toleration()}"
            assert k8s.get("nodeSelector", {}).get("labels") == pool.node_selector(), f"{where}: node selector"
