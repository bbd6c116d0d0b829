"""Cluster conventions that pipelines must match: GPU node pool, S3 settings, namespaces.

Defaults come from ``infra/cluster.env``, which the Kubernetes manifests under ``infra/k8s`` follow (the
checks in ``tests/infra`` and ``make lint-infra`` compare them); an environment variable of the same name
overrides a value at compile time. Typical use in a pipeline, with ``kfp.kubernetes``::

    pool = gpu_node_pool()
    task.set_accelerator_type(pool.resource).set_accelerator_limit(n_gpus)
    kubernetes.add_node_selector(task, label_key=pool.node_label_key, label_value=pool.node_label_value)
    kubernetes.add_toleration(task, **pool.toleration())
    s3 = s3_settings()
    kubernetes.use_config_map_as_env(task, s3.config_map, {k: k for k in s3.config_map_keys})
    kubernetes.use_secret_as_env(task, s3.secret, {k: k for k in s3.secret_keys})
"""

from __future__ import annotations

from dataclasses import dataclass

from skinattn_components.envfile import INFRA_DIR, ConventionFileError, setting, setting_list

CLUSTER_ENV_FILE = INFRA_DIR / "cluster.env"

# The taint effects Kubernetes accepts; anything else would compile but never schedule.
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _get(key: str) -> str:
    return setting(CLUSTER_ENV_FILE, key)


@dataclass(frozen=True)
class GpuNodePool:
    """How GPU nodes are recognised (label) and reserved (taint), and the resource name to request."""

    resource: str
    node_label_key: str
    node_label_value: str
    taint_key: str
    taint_value: str
    taint_effect: str

    def node_selector(self) -> dict[str, str]:
        """``nodeSelector`` that puts a pod on the GPU pool."""
        return {self.node_label_key: self.node_label_value}

    def toleration(self) -> dict[str, str]:
        """Toleration of the pool's taint, with the keyword names of ``kfp.kubernetes.add_toleration``."""
        return {"key": self.taint_key, "operator": "Equal", "value": self.taint_value, "effect": self.taint_effect}


@dataclass(frozen=True)
class S3Settings:
    """Names of the ConfigMap and Secret that carry the S3 settings, and the keys each must hold."""

    config_map: str
    config_map_keys: tuple[str, ...]
    secret: str
    secret_keys: tuple[str, ...]


def gpu_node_pool() -> GpuNodePool:
    """The GPU node-pool convention of ``infra/cluster.env`` (environment overrides applied)."""
    pool = GpuNodePool(
        resource=_get("SKINATTN_GPU_RESOURCE"),
        node_label_key=_get("SKINATTN_GPU_NODE_LABEL_KEY"),
        node_label_value=_get("SKINATTN_GPU_NODE_LABEL_VALUE"),
        taint_key=_get("SKINATTN_GPU_TAINT_KEY"),
        taint_value=_get("SKINATTN_GPU_TAINT_VALUE"),
        taint_effect=_get("SKINATTN_GPU_TAINT_EFFECT"),
    )
    if pool.taint_effect not in _TAINT_EFFECTS:
        raise ConventionFileError(
            f"SKINATTN_GPU_TAINT_EFFECT={pool.taint_effect!r} is not one of {', '.join(_TAINT_EFFECTS)}"
        )
    return pool


def s3_settings() -> S3Settings:
    """The S3 ConfigMap/Secret names and keys of ``infra/cluster.env`` (environment overrides applied)."""
    return S3Settings(
        config_map=_get("SKINATTN_S3_CONFIGMAP"),
        config_map_keys=setting_list(CLUSTER_ENV_FILE, "SKINATTN_S3_CONFIGMAP_KEYS"),
        secret=_get("SKINATTN_S3_SECRET"),
        secret_keys=setting_list(CLUSTER_ENV_FILE, "SKINATTN_S3_SECRET_KEYS"),
    )


def namespace() -> str:
    """Namespace of the serving stack and its S3 settings."""
    return _get("SKINATTN_NAMESPACE")


def kfp_namespace() -> str:
    """Namespace where KFP standalone runs pipeline pods (and where the pipeline runner account lives)."""
    return _get("SKINATTN_KFP_NAMESPACE")


def pipeline_service_account() -> str:
    """Service account to pass when submitting runs, so pods get only the RBAC that infra/k8s grants."""
    return _get("SKINATTN_PIPELINE_SERVICE_ACCOUNT")


def kfp_version() -> str:
    """The Kubeflow Pipelines backend release that infra/k8s/kfp installs."""
    return _get("SKINATTN_KFP_VERSION")
