"""The rendered TrainJob is a valid Kubeflow Trainer v2.2 object and carries the project's conventions."""

from __future__ import annotations

import json
import re

import pytest
from _trainer_api import validate_trainjob

from skinattn.errors import SkinattnError
from skinattn.steps.trainjob import render_for_run
from skinattn.steps.training import training_overrides
from skinattn.trainjob import spec
from skinattn.trainjob.node import NODE_COMMAND

SETTINGS = dict(arch="resnet10t", soft_attention=True, image_size=32, epochs=3, batch_size=4, lr=0.01, seed=7)


@pytest.fixture
def placement_json(clean_env) -> str:
    """The placement the compiled pipelines hand the launcher (components/trainjob.py)."""
    from skinattn_components.trainjob import trainjob_placement

    return trainjob_placement(cpu_request="4", cpu_limit="8", memory_request="16G", memory_limit="32G", shm_size="8Gi")


def _render(placement_json: str, **changes) -> dict:
    arguments = dict(nodes=2, gpus=4, placement_json=placement_json, namespace="kubeflow",
                     owner=spec.Owner("train-trainjob-abc-123", "0f6c9c5e-uid"), limit_s=7200.0, **SETTINGS)  # fmt: skip
    arguments.update(changes)
    return render_for_run("s3://skinattn/pipeline-root/run/prepare/prepared",
                          "s3://skinattn/pipeline-root/run/train-trainjob/model", **arguments)  # fmt: skip


def _pod_patch(obj: dict) -> dict:
    (patch,) = obj["spec"]["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"  # the torch-distributed runtime's replicated job
    return job["template"]["spec"]["template"]


@pytest.mark.parametrize("gpus", [0, 1, 4])
@pytest.mark.parametrize("with_owner", [True, False])
def test_rendered_trainjob_is_valid_v2_2(placement_json, gpus, with_owner):
    obj = _render(placement_json, gpus=gpus, **({} if with_owner else {"owner": None, "limit_s": None}))
    assert validate_trainjob(obj) == []
    assert obj["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and obj["kind"] == "TrainJob"


def test_the_validator_is_not_vacuous(placement_json):
    """A misspelt field (which the API server would silently drop), a wrong type, a reserved variable and a
    bad name are each reported."""
    obj = _render(placement_json)
    obj["spec"]["trainer"]["numNode"] = 3
    obj["spec"]["trainer"]["env"].append({"name": "PET_MASTER_PORT", "value": "1234"})
    _pod_patch(obj)["spec"]["nodeSelectors"] = {}
    obj["metadata"]["name"] = "Train_Job"
    problems = "\n".join(validate_trainjob(obj))
    for expected in (".spec.trainer.numNode", "nodeSelectors", "PET_MASTER_PORT", "RFC 1035"):
        assert expected in problems
    wrong_type = _render(placement_json)
    wrong_type["spec"]["trainer"]["numNodes"] = "2"
    assert "valid integer" in "".join(validate_trainjob(wrong_type))


def test_nodes_gpus_image_and_command(placement_json, clean_env):
    from skinattn_components.image import gpu_image

    obj = _render(placement_json, nodes=3, gpus=2)
    trainer = obj["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (3, 2)
    assert trainer["image"] == gpu_image()
    assert obj["spec"]["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime",
                                         "apiGroup": "trainer.kubeflow.org"}  # fmt: skip
    resources = trainer["resourcesPerNode"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "2"
    assert (resources["requests"]["cpu"], resources["limits"]["memory"]) == ("4", "32G")
    assert trainer["command"] == NODE_COMMAND == ["python", "-m", "skinattn.trainjob.node"]
    args = trainer["args"]
    assert args[:4] == ["--prepared", "s3://skinattn/pipeline-root/run/prepare/prepared",
                        "--publish", "s3://skinattn/pipeline-root/run/train-trainjob/model"]  # fmt: skip
    # The pod path's overrides, unchanged: both trainers train the same way.
    sets = [args[i + 1] for i in range(4, len(args), 2)]
    assert args[4::2] == ["--set"] * len(sets)
    assert sets == training_overrides("/scratch/prepared", "/scratch/run", **SETTINGS)
    assert obj["spec"]["activeDeadlineSeconds"] == 7200 + 600


def test_gpu_pool_s3_env_and_volumes_follow_the_conventions(placement_json, clean_env):
    from skinattn_components.cluster import gpu_node_pool, s3_settings

    obj = _render(placement_json)
    pool, s3 = gpu_node_pool(), s3_settings()
    pod = _pod_patch(obj)
    assert pod["spec"]["nodeSelector"] == pool.node_selector()
    assert pod["spec"]["tolerations"] == [pool.toleration()]
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == obj["metadata"]["name"]
    env = {e["name"]: e for e in obj["spec"]["trainer"]["env"]}
    for key in s3.config_map_keys:
        assert env[key]["valueFrom"]["configMapKeyRef"] == {"name": s3.config_map, "key": key, "optional": True}
    for key in s3.secret_keys:
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": s3.secret, "key": key, "optional": True}
    assert not any(name.startswith("PET_") for name in env)  # the runtime's, reserved
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "node"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/dev/shm", "/scratch"}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"


def test_cpu_only_trainjob_stays_off_the_gpu_pool(placement_json):
    obj = _render(placement_json, gpus=0)
    pod = _pod_patch(obj)
    assert "nodeSelector" not in pod["spec"] and "tolerations" not in pod["spec"]
    resources = obj["spec"]["trainer"]["resourcesPerNode"]
    assert not any("gpu" in key for section in resources.values() for key in section)
    assert obj["spec"]["trainer"]["numProcPerNode"] == 1


def test_owner_is_the_launcher_pod(placement_json):
    obj = _render(placement_json)
    assert obj["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": "train-trainjob-abc-123", "uid": "0f6c9c5e-uid"}
    ]
    assert obj["metadata"]["name"] == spec.trainjob_name("0f6c9c5e-uid")  # a retried pod gets another name


def test_names_fit_the_runtime_host_names():
    for seed in ("a", "0f6c9c5e-1111-2222-3333-444455556666", "x" * 200):
        name = spec.trainjob_name(seed)
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)
        assert len(f"{name}-node-0-0") <= 63  # the first node's pod host name (PET_MASTER_ADDR)
    with pytest.raises(SkinattnError, match="RFC 1035"):
        spec.check_name("Upper")


def test_data_must_move_through_s3(placement_json):
    with pytest.raises(SkinattnError, match="pipeline root on the project's S3"):
        render_for_run("minio://mlpipeline/v2/artifacts/prepared", "s3://b/model", nodes=1, gpus=1,
                       placement_json=placement_json, namespace="kubeflow", **SETTINGS)  # fmt: skip
    with pytest.raises(SkinattnError, match="at least one node"):
        _render(placement_json, nodes=0)


def test_placement_round_trip_and_refusals(placement_json):
    placement = spec.Placement.from_json(placement_json)
    assert spec.Placement.from_json(placement.to_json()) == placement
    with pytest.raises(SkinattnError, match="unknown fields"):
        spec.Placement.from_json(json.dumps({**json.loads(placement_json), "imag": "x"}))
    with pytest.raises(SkinattnError, match="not JSON"):
        spec.Placement.from_json("{")
