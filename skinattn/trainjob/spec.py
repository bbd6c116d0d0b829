"""The TrainJob object that trains on N nodes x G GPUs: a pure function of its inputs.

Kubeflow Trainer v2.2 (``trainer.kubeflow.org/v1alpha1``, pinned in ``infra/cluster.env`` as
``SKINATTN_TRAINER_VERSION``). The fields this project relies on, as the v2.2 API defines them
(``pkg/apis/trainer/v1alpha1/trainjob_types.go`` of kubeflow/trainer; the same API as the
``kubeflow-trainer-api==2.2.0`` models that ``tests/trainjob`` validate every rendered object with):

- ``metadata.name``: an RFC 1035 label of at most 63 characters (CEL rules of the CRD); the runtime names the
  first node's pod ``<name>-node-0-0`` under a headless service ``<name>`` (PET_MASTER_ADDR, see
  :mod:`.node`), so names are kept short (:func:`trainjob_name`);
- ``metadata.labels``, ``metadata.ownerReferences`` (the launcher pod: the TrainJob is garbage-collected with it);
- ``spec.runtimeRef`` (``name``, ``kind``, ``apiGroup``): the ``torch-distributed`` ClusterTrainingRuntime;
- ``spec.trainer``: ``image``, ``command``, ``args``, ``env`` (PET_* names are reserved: the webhook refuses
  them), ``numNodes``, ``numProcPerNode`` (an integer in v2.2), ``resourcesPerNode``;
- ``spec.runtimePatches[]`` (new in v2.2, replacing v2.1's ``podTemplateOverrides``): ``manager`` and
  ``trainingRuntimeSpec.template.spec.replicatedJobs[name=node].template.spec.template`` with pod
  ``metadata.labels`` and ``spec.nodeSelector``, ``tolerations``, ``volumes`` and
  ``containers[name=node].volumeMounts`` (a patch may not set ``env`` of the ``node`` container: that goes
  through ``spec.trainer.env``);
- ``spec.activeDeadlineSeconds`` (new in v2.2): past it the TrainJob fails with reason ``DeadlineExceeded``;
- ``status.conditions[]`` (``type`` Complete / Failed / Suspended, ``status``, ``reason``, ``message``), read by
  :mod:`.launcher`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from skinattn.errors import SkinattnError

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainJob"
PLURAL = "trainjobs"
# The runtime every TrainJob of this project references, and its kind (Trainer's default kind).
DEFAULT_RUNTIME = "torch-distributed"
RUNTIME_KIND = "ClusterTrainingRuntime"
# The torch-distributed runtime's replicated job and its container are both called "node".
NODE = "node"
# Who owns our runtime patch (a TrainJob keeps one patch per manager).
PATCH_MANAGER = "skinattn.launcher"
# Labels on the TrainJob and on every trainer pod: the launcher finds the pods by INSTANCE_LABEL.
INSTANCE_LABEL = "app.kubernetes.io/instance"
PART_OF_LABEL = "app.kubernetes.io/part-of"
COMPONENT_LABEL = "app.kubernetes.io/component"
# Where the node command keeps the prepared copy and the run folder: an emptyDir, so a 3 GB resize cache does
# not fill the container's writable layer; /dev/shm is memory-backed for DataLoader workers and NCCL.
SCRATCH_DIR = "/scratch"
SHM_DIR = "/dev/shm"
# "skinattn-train-" + 10 hex digits = 25 characters: the pod host name "<name>-node-0-0" stays far below 63.
NAME_PREFIX = "skinattn-train-"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 63


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where and how the trainer nodes run: fixed when the pipeline is compiled (image, GPU node pool, S3
    ConfigMap/Secret names, per-node resources), handed to the launcher as one JSON parameter."""

    image: str
    runtime: str = DEFAULT_RUNTIME
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    config_map: str = ""
    config_map_keys: tuple[str, ...] = ()
    secret: str = ""
    secret_keys: tuple[str, ...] = ()
    cpu_request: str = "4"
    cpu_limit: str = "8"
    memory_request: str = "16G"
    memory_limit: str = "32G"
    shm_size: str = "8Gi"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Placement:
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise SkinattnError(f"TrainJob placement is not JSON ({exc}): {text[:200]!r}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown or not values.get("image"):
            raise SkinattnError(f"TrainJob placement: unknown fields {unknown} or no image in {text[:200]!r}")
        for key in ("tolerations", "config_map_keys", "secret_keys"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class Owner:
    """The launcher pod that owns a TrainJob (same namespace): deleting the pod deletes the TrainJob."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        # Neither controller nor blockOwnerDeletion: both would need more RBAC on pods, and neither is needed
        # for garbage collection.
        return {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}


def trainjob_name(seed: str) -> str:
    """A TrainJob name derived from ``seed`` (the launcher pod's UID: a retried pod gets a new name)."""
    return NAME_PREFIX + hashlib.sha256(seed.encode()).hexdigest()[:10]


def check_name(name: str) -> str:
    if len(name) > _NAME_MAX or not _NAME.fullmatch(name):
        raise SkinattnError(f"TrainJob name {name!r}: must be a lower-case RFC 1035 label of at most 63 characters")
    return name


def processes_per_node(gpus: int) -> int:
    """One process per GPU; a CPU-only TrainJob (``gpus`` 0, e.g. on kind) runs one process per node."""
    return max(int(gpus), 1)


def _env(placement: Placement) -> list[dict[str, Any]]:
    """PYTHONUNBUFFERED (the log streams line by line) and the S3 settings, exactly as pipeline tasks get them
    from ``with_s3`` (optional references: a cluster without S3 needs neither object)."""
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    for key in placement.config_map_keys:
        env.append({"name": key, "valueFrom": {"configMapKeyRef": {"name": placement.config_map, "key": key, "optional": True}}})
    for key in placement.secret_keys:
        env.append({"name": key, "valueFrom": {"secretKeyRef": {"name": placement.secret, "key": key, "optional": True}}})
    return env


def _resources(placement: Placement, gpus: int) -> dict[str, Any]:
    requests = {"cpu": placement.cpu_request, "memory": placement.memory_request}
    limits = {"cpu": placement.cpu_limit, "memory": placement.memory_limit}
    if gpus > 0:
        requests[placement.gpu_resource] = limits[placement.gpu_resource] = str(int(gpus))
    return {"requests": requests, "limits": limits}


def _pod_patch(name: str, placement: Placement, gpus: int) -> dict[str, Any]:
    """The trainer pods' template patch: labels, the GPU pool (only when GPUs are requested), the scratch and
    shared-memory volumes."""
    spec: dict[str, Any] = {
        "volumes": [
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": placement.shm_size}},
            {"name": "scratch", "emptyDir": {}},
        ],
        "containers": [
            {
                "name": NODE,
                "volumeMounts": [
                    {"name": "dshm", "mountPath": SHM_DIR},
                    {"name": "scratch", "mountPath": SCRATCH_DIR},
                ],
            }
        ],
    }
    if gpus > 0:
        if placement.node_selector:
            spec["nodeSelector"] = dict(placement.node_selector)
        if placement.tolerations:
            spec["tolerations"] = [dict(t) for t in placement.tolerations]
    return {"metadata": {"labels": labels(name)}, "spec": spec}


def labels(name: str) -> dict[str, str]:
    return {PART_OF_LABEL: "skinattn", COMPONENT_LABEL: "trainer", INSTANCE_LABEL: name}


def render_trainjob(
    *,
    name: str,
    namespace: str,
    placement: Placement,
    nodes: int,
    gpus: int,
    command: list[str],
    args: list[str],
    deadline_seconds: int | None = None,
    owner: Owner | None = None,
) -> dict[str, Any]:
    """The TrainJob body to POST: ``nodes`` nodes running ``command args`` in ``placement.image``, with ``gpus``
    GPUs and as many processes each (one process on CPU when ``gpus`` is 0)."""
    nodes, gpus = int(nodes), int(gpus)
    if nodes < 1:
        raise SkinattnError(f"nodes={nodes}: a TrainJob needs at least one node")
    if gpus < 0:
        raise SkinattnError(f"gpus={gpus}: must be 0 (CPU) or more")
    metadata: dict[str, Any] = {"name": check_name(name), "namespace": namespace, "labels": labels(name)}
    if owner is not None:
        metadata["ownerReferences"] = [owner.reference()]
    spec: dict[str, Any] = {
        "runtimeRef": {"name": placement.runtime, "kind": RUNTIME_KIND, "apiGroup": GROUP},
        "trainer": {
            "image": placement.image,
            "command": list(command),
            "args": list(args),
            "env": _env(placement),
            "numNodes": nodes,
            "numProcPerNode": processes_per_node(gpus),
            "resourcesPerNode": _resources(placement, gpus),
        },
        "runtimePatches": [
            {
                "manager": PATCH_MANAGER,
                "trainingRuntimeSpec": {
                    "template": {
                        "spec": {
                            "replicatedJobs": [
                                {"name": NODE, "template": {"spec": {"template": _pod_patch(name, placement, gpus)}}}
                            ]
                        }
                    }
                },
            }
        ],
    }
    if deadline_seconds:
        spec["activeDeadlineSeconds"] = max(1, int(deadline_seconds))
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
