"""The Kubernetes manifests, as written, agree with infra/image.env and infra/cluster.env.

These read the source files (no kubectl needed). `make lint-infra` checks the same agreement on the rendered
output of every overlay, through infra/conformance.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from skinattn_components import cluster, image

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"


def yaml_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def env_keys(path: Path) -> list[str]:
    return [line.split("=", 1)[0] for line in path.read_text().splitlines() if line and not line.startswith("#")]


def pod_spec(path: Path, kind: str, name: str) -> dict:
    (doc,) = [d for d in yaml_docs(path) if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc["spec"]["template"]["spec"]


def test_every_yaml_file_parses():
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) > 15
    for path in files:
        assert yaml_docs(path), f"{path} is empty"


def test_image_component_maps_placeholders_to_image_env(clean_env):
    (kustomization,) = yaml_docs(K8S / "components" / "images" / "kustomization.yaml")
    mapped = {entry["name"]: f"{entry['newName']}:{entry['newTag']}" for entry in kustomization["images"]}
    assert mapped == {
        "skinattn": image.component_image(),
        "skinattn-gpu": image.gpu_image(),
        "skinattn-serving": image.serving_image(),
    }


def test_every_kustomization_that_adds_workloads_applies_the_image_component():
    """A base's `images:` would miss what overlays add, so base and each overlay include the component."""
    for path in [K8S / "base" / "kustomization.yaml", *sorted((K8S / "overlays").glob("*/kustomization.yaml"))]:
        (kustomization,) = yaml_docs(path)
        assert any(c.endswith("components/images") for c in kustomization.get("components", [])), path


def test_gpu_workloads_follow_the_node_pool_convention(clean_env):
    pool = cluster.gpu_node_pool()
    overlay = K8S / "overlays" / "gpu-cluster"
    for spec in (
        pod_spec(overlay / "serving-gpu.yaml", "Deployment", "skinattn-serving"),
        pod_spec(overlay / "gpu-image-prepuller.yaml", "DaemonSet", "skinattn-gpu-image-prepuller"),
    ):
        assert spec["nodeSelector"] == pool.node_selector()
        assert spec["tolerations"] == [pool.toleration()]
    serving = pod_spec(overlay / "serving-gpu.yaml", "Deployment", "skinattn-serving")
    assert serving["containers"][0]["resources"]["limits"][pool.resource] == 1


def test_s3_configmap_name_and_keys(clean_env):
    s3 = cluster.s3_settings()
    (kustomization,) = yaml_docs(K8S / "base" / "s3-settings" / "kustomization.yaml")
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == s3.config_map
    assert generator["options"]["disableNameSuffixHash"] is True  # pipelines refer to the fixed name
    for env_file in (K8S / "base" / "s3-settings" / "s3.env", K8S / "overlays" / "gpu-cluster" / "s3-settings.env"):
        assert env_keys(env_file) == list(s3.config_map_keys), env_file
    (overlay,) = yaml_docs(K8S / "overlays" / "gpu-cluster" / "kustomization.yaml")
    assert {g["name"] for g in overlay["configMapGenerator"]} == {s3.config_map}
    assert {g["namespace"] for g in overlay["configMapGenerator"]} == {cluster.namespace(), cluster.kfp_namespace()}


def test_minio_uses_the_agreed_secret_and_keys(clean_env):
    s3 = cluster.s3_settings()
    spec = pod_spec(K8S / "components" / "minio" / "minio.yaml", "Deployment", "minio")
    refs = [v["valueFrom"]["secretKeyRef"] for v in spec["containers"][0]["env"] if "valueFrom" in v]
    assert {r["name"] for r in refs} == {s3.secret}
    assert sorted(r["key"] for r in refs) == sorted(s3.secret_keys)
    job = pod_spec(K8S / "components" / "minio" / "create-bucket-job.yaml", "Job", "minio-create-bucket")
    assert job["containers"][0]["envFrom"] == [{"configMapRef": {"name": s3.config_map}}, {"secretRef": {"name": s3.secret}}]


def test_kfp_launcher_writes_the_pipeline_root_to_the_project_bucket(clean_env):
    """KFP's launcher config (namespace of the runs) defaults every run to SKINATTN_PIPELINE_ROOT, in the
    bucket that every S3 settings file names, with the agreed Secret; the runner's Role may read it."""
    s3, root = cluster.s3_settings(), cluster.pipeline_root()
    (pipelines,) = yaml_docs(K8S / "base" / "pipelines" / "kustomization.yaml")
    assert "kfp-launcher.yaml" in pipelines["resources"] and pipelines["namespace"] == cluster.kfp_namespace()
    (launcher,) = yaml_docs(K8S / "base" / "pipelines" / "kfp-launcher.yaml")
    assert launcher["metadata"]["name"] == "kfp-launcher"  # the name KFP's launcher looks up
    assert launcher["data"]["defaultPipelineRoot"] == root
    bucket = root.removeprefix("s3://").split("/", 1)[0]
    for env_file in (K8S / "base" / "s3-settings" / "s3.env", K8S / "overlays" / "gpu-cluster" / "s3-settings.env"):
        values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        assert values["SKINATTN_S3_BUCKET"] == bucket, env_file
    credentials = yaml.safe_load(launcher["data"]["providers"])["s3"]["default"]["credentials"]
    assert credentials["fromEnv"] is False
    ref = credentials["secretRef"]
    assert ref["secretName"] == s3.secret and [ref["accessKeyKey"], ref["secretKeyKey"]] == list(s3.secret_keys)
    (role,) = [d for d in yaml_docs(K8S / "base" / "pipelines" / "rbac.yaml") if d["kind"] == "Role"]
    assert any(s3.secret in rule.get("resourceNames", []) for rule in role["rules"] if rule["resources"] == ["secrets"])


def test_no_secret_is_committed():
    for path in K8S.rglob("*.yaml"):
        assert all(doc.get("kind") != "Secret" for doc in yaml_docs(path)), path


def test_namespaces_and_pipeline_runner_account(clean_env):
    (serving,) = yaml_docs(K8S / "base" / "serving" / "kustomization.yaml")
    (pipelines,) = yaml_docs(K8S / "base" / "pipelines" / "kustomization.yaml")
    assert serving["namespace"] == cluster.namespace()
    assert pipelines["namespace"] == cluster.kfp_namespace()
    docs = yaml_docs(K8S / "base" / "pipelines" / "rbac.yaml")
    account = cluster.pipeline_service_account()
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"] == [account]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]


def test_serving_deployment_contract():
    """What issue 6's service must honour: port 3000, /livez and /readyz, writes only under /tmp."""
    spec = pod_spec(K8S / "base" / "serving" / "deployment.yaml", "Deployment", "skinattn-serving")
    (container,) = spec["containers"]
    assert container["ports"][0]["containerPort"] == 3000
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsNonRoot"] is True
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["BENTOML_HOME"].startswith("/tmp/")
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/tmp"]


@pytest.mark.parametrize("part", ["cluster-scoped", "standalone"])
def test_kfp_release_is_pinned_to_cluster_env(clean_env, part):
    (kustomization,) = yaml_docs(K8S / "kfp" / part / "kustomization.yaml")
    (resource,) = kustomization["resources"]
    assert resource.startswith("https://github.com/kubeflow/pipelines//manifests/kustomize/")
    assert re.search(r"\?ref=([^&]+)$", resource).group(1) == cluster.kfp_version()
