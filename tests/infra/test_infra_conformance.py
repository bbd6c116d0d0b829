"""infra/conformance.py: it accepts agreeing manifests and names each kind of disagreement.

The rendered overlays are checked too when the tool venv (`make infra-tools`) provides kubectl; without it
that one test skips, and `make lint-infra` covers it.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBECTL = REPO_ROOT / ".venv-infra" / "bin" / "kubectl"


@pytest.fixture
def conv(conformance, clean_env):
    return conformance.Conventions.load()


@pytest.fixture
def good_objects(conv):
    """The smallest object set that agrees with every convention: a GPU model server, the runner RBAC, and
    KFP's launcher settings for the pipeline root."""
    pool, s3 = conv.gpu, conv.s3
    serving = {
        "kind": "Deployment",
        "metadata": {"name": "skinattn-serving", "namespace": conv.namespace},
        "spec": {"template": {"spec": {
            "nodeSelector": pool.node_selector(),
            "tolerations": [pool.toleration()],
            "containers": [{
                "name": "serving",
                "image": conv.images["serving"],
                "resources": {"limits": {pool.resource: 1}},
                "envFrom": [{"configMapRef": {"name": s3.config_map}}, {"secretRef": {"name": s3.secret}}],
            }],
        }}},
    }
    kfp_ns = conv.kfp_namespace
    bucket = conv.pipeline_root.removeprefix("s3://").split("/", 1)[0]
    return [
        {"kind": "Namespace", "metadata": {"name": conv.namespace}},
        serving,
        {"kind": "ConfigMap", "metadata": {"name": s3.config_map, "namespace": kfp_ns},
         "data": {"AWS_ENDPOINT_URL": "http://minio:9000", "AWS_REGION": "us-east-1", "SKINATTN_S3_BUCKET": bucket}},
        {"kind": "ServiceAccount", "metadata": {"name": conv.pipeline_service_account, "namespace": kfp_ns}},
        {"kind": "Role", "metadata": {"name": "runner", "namespace": kfp_ns},
         "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [s3.secret], "verbs": ["get"]}]},
        {"kind": "RoleBinding", "metadata": {"name": "runner", "namespace": kfp_ns}, "roleRef": {"name": "runner"},
         "subjects": [{"kind": "ServiceAccount", "name": conv.pipeline_service_account}]},
        {"kind": "ConfigMap", "metadata": {"name": "kfp-launcher", "namespace": kfp_ns},
         "data": {"defaultPipelineRoot": conv.pipeline_root, "providers": yaml.safe_dump({"s3": {"default": {
             "endpoint": "http://minio:9000", "region": "us-east-1", "disableSSL": True,
             "credentials": {"fromEnv": False, "secretRef": {"secretName": s3.secret, "accessKeyKey": s3.secret_keys[0],
                                                             "secretKeyKey": s3.secret_keys[1]}},
         }}})}},
    ]


def test_agreeing_objects_pass(conformance, conv, good_objects):
    assert conformance.check_objects(good_objects, conv) == []


def _serving_spec(objects):
    return objects[1]["spec"]["template"]["spec"]


def _break_image(objects, conv):
    _serving_spec(objects)["containers"][0]["image"] = conv.images["serving"].rsplit(":", 1)[0] + ":0.0.0"


def _break_placeholder(objects, conv):
    _serving_spec(objects)["containers"][0]["image"] = "skinattn-serving"


def _break_toleration(objects, conv):
    _serving_spec(objects)["tolerations"][0]["value"] = "wrong"


def _break_selector(objects, conv):
    del _serving_spec(objects)["nodeSelector"]


def _break_configmap_keys(objects, conv):
    objects[2]["data"]["EXTRA"] = "x"


def _break_secret_name(objects, conv):
    _serving_spec(objects)["containers"][0]["envFrom"][1]["secretRef"]["name"] = "other"


def _token_secret_elsewhere(objects, conv):
    # The serving token's Secret is accepted on the serving Deployment only (test below), not on any workload.
    objects[1]["metadata"]["name"] = "another-workload"
    _serving_spec(objects)["containers"][0]["env"] = [{"name": "SKINATTN_API_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "skinattn-serving-auth", "key": "token", "optional": True}}}]


def _commit_a_secret(objects, conv):
    objects.append({"kind": "Secret", "metadata": {"name": conv.s3.secret, "namespace": conv.namespace}})


def _wildcard_role(objects, conv):
    objects[4]["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]})


def _secrets_without_names(objects, conv):
    del objects[4]["rules"][0]["resourceNames"]


def _foreign_namespace(objects, conv):
    objects[1]["metadata"]["namespace"] = "default"


def _launcher_provider(objects, **changes):
    data = objects[6]["data"]
    providers = yaml.safe_load(data["providers"])
    providers["s3"]["default"].update(changes)
    data["providers"] = yaml.safe_dump(providers)


def _no_launcher_config(objects, conv):
    del objects[6]


def _launcher_uses_kfps_store(objects, conv):
    objects[6]["data"]["defaultPipelineRoot"] = "minio://mlpipeline/v2/artifacts"


def _root_outside_the_bucket(objects, conv):
    objects[2]["data"]["SKINATTN_S3_BUCKET"] = "another-bucket"


def _launcher_endpoint_differs(objects, conv):
    _launcher_provider(objects, endpoint="https://s3.eu-west-1.amazonaws.com")


def _plain_http_with_ssl(objects, conv):
    _launcher_provider(objects, disableSSL=False)


def _launcher_other_secret(objects, conv):
    _launcher_provider(objects, credentials={"fromEnv": False, "secretRef": {"secretName": "mlpipeline-minio-artifact"}})


def _runner_cannot_read_the_secret(objects, conv):
    objects[4]["rules"][0]["resourceNames"] = ["mlpipeline-minio-artifact"]


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (_break_image, "is not one of infra/image.env"),
        (_break_placeholder, "has no tag"),
        (_break_toleration, "tolerations"),
        (_break_selector, "nodeSelector"),
        (_break_configmap_keys, "EXTRA"),
        (_break_secret_name, "secret 'other'"),
        (_token_secret_elsewhere, "secret 'skinattn-serving-auth'"),
        (_commit_a_secret, "must not be committed"),
        (_wildcard_role, "wildcard"),
        (_secrets_without_names, "without resourceNames"),
        (_foreign_namespace, "namespace 'default'"),
        (_no_launcher_config, "kfp-launcher missing in the KFP namespace"),
        (_launcher_uses_kfps_store, "defaultPipelineRoot 'minio://mlpipeline/v2/artifacts' != SKINATTN_PIPELINE_ROOT"),
        (_root_outside_the_bucket, "is not in the S3 bucket 'another-bucket'"),
        (_launcher_endpoint_differs, "s3 endpoint 'https://s3.eu-west-1.amazonaws.com' != AWS_ENDPOINT_URL"),
        (_plain_http_with_ssl, "disableSSL"),
        (_launcher_other_secret, "credentials must come from the Secret"),
        (_runner_cannot_read_the_secret, "may not get Secret"),
    ],
)
def test_each_disagreement_is_reported(conformance, conv, good_objects, breaker, message):
    objects = copy.deepcopy(good_objects)
    breaker(objects, conv)
    problems = conformance.check_objects(objects, conv)
    assert any(message in p for p in problems), problems


def test_the_serving_token_secret_is_accepted_on_the_serving_deployment(conformance, conv, good_objects):
    objects = copy.deepcopy(good_objects)
    _serving_spec(objects)["containers"][0]["env"] = [{"name": "SKINATTN_API_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "skinattn-serving-auth", "key": "token", "optional": True}}}]
    assert conformance.check_objects(objects, conv) == []


def test_environment_override_changes_what_agrees(conformance, good_objects, clean_env):
    """An image override at compile time must be mirrored in the manifests, or the check fails."""
    clean_env.setenv("SKINATTN_SERVING_IMAGE", "registry.example.com/skinattn-serving:9.9.9")
    conv = conformance.Conventions.load()
    assert any("must be the serving image" in p for p in conformance.check_objects(good_objects, conv))


@pytest.mark.parametrize("overlay", ["local-kind", "gpu-cluster"])
def test_rendered_overlay_conforms(conformance, conv, overlay):
    if not KUBECTL.exists():
        pytest.skip("kubectl comes with the tool venv: run `make infra-tools` (make lint-infra checks this too)")
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(REPO_ROOT / "infra" / "k8s" / "overlays" / overlay)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    objects = list(yaml.safe_load_all(rendered))
    assert conformance.check_objects(objects, conv) == []
    # UI runs too write to the project's bucket: KFP's launcher config, where the runs execute.
    (launcher,) = [o for o in objects if o and o["kind"] == "ConfigMap" and o["metadata"]["name"] == "kfp-launcher"]
    assert launcher["metadata"]["namespace"] == conv.kfp_namespace
    assert launcher["data"]["defaultPipelineRoot"] == conv.pipeline_root == "s3://skinattn/pipeline-root"
