"""Cluster conventions that pipelines must match: GPU node pool, S3 settings, namespaces, pipeline root.

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

import re
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


@dataclass(frozen=True)
class TaskTimeouts:
    """The pods' time limits (activeDeadlineSeconds), in seconds, per kind of pipeline task.

    ``kfp.kubernetes.set_timeout`` takes a number fixed at compile time, not a pipeline parameter: these come
    from ``infra/cluster.env`` (``SKINATTN_TIMEOUT_*``), or the environment when compiling, e.g.
    ``SKINATTN_TIMEOUT_TRAIN=14d skinattn pipeline submit ...``.
    """

    check: int  # the validation step, resolve-scoring-model: seconds of work
    step: int  # ingest, prepare, evaluate, the gate, register, tables, listing, merge
    score: int  # one score-shard pod
    train: int  # the outer bound of the train pod; the run's own limit is the train_timeout_hours parameter

    @property
    def train_hours(self) -> float:
        return self.train / 3600


_DURATION = re.compile(r"([1-9][0-9]*)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(key: str) -> int:
    value = _get(key)
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ConventionFileError(f"{key}={value!r}: expected a whole number above 0 and a unit s, m, h or d (e.g. 6h)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def task_timeouts() -> TaskTimeouts:
    """The per-kind task time limits of ``infra/cluster.env`` (environment overrides applied)."""
    return TaskTimeouts(
        check=_seconds("SKINATTN_TIMEOUT_CHECK"),
        step=_seconds("SKINATTN_TIMEOUT_STEP"),
        score=_seconds("SKINATTN_TIMEOUT_SCORE"),
        train=_seconds("SKINATTN_TIMEOUT_TRAIN"),
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


# What KFP's launcher (2.x) accepts as a pipeline root: an object store scheme it opens, a bucket, an optional
# prefix and query (the launcher's own pattern). A local path or an http:// URL would compile and upload, then
# fail every task of the run when its outputs are written.
_PIPELINE_ROOT = re.compile(r"(s3|gs|minio)://([^/?]+)(/[^?]*)?(\?.+)?")


def check_pipeline_root(uri: str) -> str:
    """``uri`` stripped, when KFP's launcher can write artifacts under it (``s3://bucket/prefix``,
    ``gs://...``, ``minio://...``); ``ValueError`` saying what is wrong otherwise."""
    root = uri.strip()
    if not _PIPELINE_ROOT.fullmatch(root):
        raise ValueError(
            f"pipeline root {uri!r} is not an object store URI KFP's launcher writes to "
            "(s3://bucket/prefix, gs://bucket/prefix or minio://bucket/prefix)"
        )
    return root


def pipeline_root() -> str:
    """Where runs submitted, uploaded or scheduled by the CLI keep their artifacts (``SKINATTN_PIPELINE_ROOT``);
    the kfp-launcher ConfigMap of infra/k8s makes it the default of runs started from the UI too."""
    value = _get("SKINATTN_PIPELINE_ROOT")
    try:
        return check_pipeline_root(value)
    except ValueError as exc:
        raise ConventionFileError(f"SKINATTN_PIPELINE_ROOT: {exc}") from None
