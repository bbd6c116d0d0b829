"""infra/ for trainer=trainjob: the pinned Kubeflow Trainer release everywhere it is named, and the pipeline
runner's RBAC for TrainJobs (exact verbs, nothing more)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from skinattn.trainjob import spec

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "infra" / "k8s"


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_one_trainer_release_everywhere(clean_env):
    from skinattn_components.trainjob import trainer_runtime, trainer_version

    version = trainer_version()
    assert re.fullmatch(r"v2\.2\.\d+", version), "the API this code relies on is v2.2's (skinattn/trainjob/spec.py)"
    for part in ("manager", "runtimes"):
        (kustomization,) = _docs(K8S / "trainer" / part / "kustomization.yaml")
        (resource,) = kustomization["resources"]
        assert resource == f"https://github.com/kubeflow/trainer//manifests/overlays/{part}?ref={version}"
    dev = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert f"kubeflow-trainer-api=={version.lstrip('v')}" in dev  # the models the tests validate with
    assert trainer_runtime() == spec.DEFAULT_RUNTIME == "torch-distributed"


def test_pipeline_runner_may_run_trainjobs_and_nothing_more(clean_env):
    from skinattn_components.cluster import pipeline_service_account

    (role,) = [d for d in _docs(K8S / "base" / "pipelines" / "rbac.yaml") if d["kind"] == "Role"]
    assert role["metadata"]["name"] == pipeline_service_account()
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules[(("trainer.kubeflow.org",), ("trainjobs",))] == {"create", "get", "list", "watch", "delete"}
    assert rules[(("",), ("events",))] == {"get", "list", "watch"}
    assert {"get", "list"} <= rules[(("",), ("pods",))]  # the trainer pods' phases
    # The launcher never changes a TrainJob, and nothing reaches other trainer.kubeflow.org kinds.
    trainer_rules = [r for r in role["rules"] if "trainer.kubeflow.org" in r["apiGroups"]]
    assert len(trainer_rules) == 1 and not {"update", "patch", "*"} & set(trainer_rules[0]["verbs"])
