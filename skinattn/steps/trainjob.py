"""Step of the ``train-trainjob`` component (``components/trainjob.py``): train on a Kubeflow Trainer TrainJob.

The launcher pod (no GPU) renders the TrainJob (:mod:`skinattn.trainjob.spec`) with the same training
overrides as the pod path (:func:`skinattn.steps.training.training_overrides`), creates it, follows it
(:mod:`skinattn.trainjob.launcher`), and copies the model folder that node 0 published back into its KFP
output. Data moves through S3 both ways, because the trainer pods do not get KFP's artifact paths: the nodes
read the prepared Dataset at its artifact URI, and node 0 publishes the model folder at the Model output's
own URI; after the launcher has copied it into the output path, KFP uploads the same files to the same place.
Both URIs must therefore be ``s3://`` (the pipeline root on the project's S3: ``SKINATTN_PIPELINE_ROOT``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from skinattn.errors import SkinattnError

# The launcher pod learns who it is from these (the Downward API, set by pipelines/_tasks.py): the TrainJob
# is created in the pod's namespace and owned by the pod.
POD_NAME_ENV = "SKINATTN_POD_NAME"
POD_UID_ENV = "SKINATTN_POD_UID"
POD_NAMESPACE_ENV = "SKINATTN_POD_NAMESPACE"
_SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# The TrainJob's own deadline (activeDeadlineSeconds) leaves the launcher this long after its own limit to
# notice, say so and delete it; the cluster-side deadline only matters when the launcher died first.
DEADLINE_MARGIN_S = 600


def _require_s3(what: str, uri: str) -> str:
    if not uri.startswith("s3://"):
        raise SkinattnError(
            f"trainer=trainjob moves data through S3, but {what} is at {uri!r}: run with the pipeline root on "
            "the project's S3 (SKINATTN_PIPELINE_ROOT, --pipeline-root; see docs/pipelines.md)"
        )
    return uri


def pod_identity(environ: dict[str, str] | None = None) -> tuple[str, Any]:
    """(namespace, Owner or None) of the launcher pod, from the Downward API variables."""
    from skinattn.trainjob.spec import Owner

    env = os.environ if environ is None else environ
    namespace = env.get(POD_NAMESPACE_ENV) or (
        _SA_NAMESPACE_FILE.read_text(encoding="utf-8").strip() if _SA_NAMESPACE_FILE.is_file() else ""
    )
    if not namespace:
        raise SkinattnError(
            f"trainer=trainjob runs on a Kubernetes cluster: {POD_NAMESPACE_ENV} is unset and no service account "
            "namespace is mounted (kfp.local cannot run it; use trainer=pod)"
        )
    owner = Owner(env[POD_NAME_ENV], env[POD_UID_ENV]) if env.get(POD_NAME_ENV) and env.get(POD_UID_ENV) else None
    return namespace, owner


def in_cluster_api_client() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException as exc:
        raise SkinattnError(f"trainer=trainjob needs the in-cluster Kubernetes API ({exc}); use trainer=pod elsewhere") from None
    return client.ApiClient()


def render_for_run(
    prepared_uri: str,
    model_uri: str,
    *,
    nodes: int,
    gpus: int,
    placement_json: str,
    namespace: str,
    owner: Any = None,
    limit_s: float | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """The TrainJob of one train step (pure): the node command with the pod path's training overrides."""
    from skinattn.steps.training import training_overrides
    from skinattn.trainjob.node import NODE_COMMAND, node_args
    from skinattn.trainjob.spec import SCRATCH_DIR, Placement, render_trainjob, trainjob_name

    overrides = training_overrides(f"{SCRATCH_DIR}/prepared", f"{SCRATCH_DIR}/run", **settings)
    seed = owner.uid if owner is not None else uuid.uuid4().hex
    return render_trainjob(
        name=trainjob_name(seed),
        namespace=namespace,
        placement=Placement.from_json(placement_json),
        nodes=nodes,
        gpus=gpus,
        command=NODE_COMMAND,
        args=node_args(_require_s3("the prepared data set", prepared_uri), _require_s3("the model output", model_uri), overrides),
        deadline_seconds=int(limit_s + DEADLINE_MARGIN_S) if limit_s else None,
        owner=owner,
    )


def trainjob_step(
    prepared_uri: str,
    model_uri: str,
    model_out: str | Path,
    *,
    nodes: int,
    gpus: int,
    placement_json: str,
    timeout_hours: float = 0.0,
    api_client: Any = None,
    environ: dict[str, str] | None = None,
    poll_s: float | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Train on ``nodes`` x ``gpus`` through a TrainJob; the model folder ends up in ``model_out`` (as the pod
    path's :func:`skinattn.steps.training.train_step` writes it). Returns the run's summary.json.

    ``settings`` are the keyword arguments of :func:`skinattn.steps.training.training_overrides`. The time
    limit is the pod path's (:func:`skinattn.run_parameters.train_time_limit_hours`). ``api_client`` defaults
    to the in-cluster configuration.
    """
    from skinattn.run_parameters import train_time_limit_hours
    from skinattn.storage import fetch_folder
    from skinattn.trainjob.launcher import POLL_S, TrainJobApi, launch

    if int(nodes) < 1:
        raise SkinattnError(f"nodes={nodes}: a TrainJob needs at least one node")
    namespace, owner = pod_identity(environ)
    limit_s = train_time_limit_hours(timeout_hours, settings["epochs"]) * 3600
    body = render_for_run(
        prepared_uri, model_uri, nodes=int(nodes), gpus=int(gpus), placement_json=placement_json,
        namespace=namespace, owner=owner, limit_s=limit_s, **settings,
    )  # fmt: skip
    api = TrainJobApi(api_client if api_client is not None else in_cluster_api_client(), namespace)
    print(f"training on {int(nodes)} node(s) x {int(gpus)} GPU(s) with a time limit of {limit_s / 3600:g} h")
    launch(api, body, timeout_s=limit_s, poll_s=POLL_S if poll_s is None else poll_s, log=lambda line: print(line, flush=True))
    model_out = Path(model_out)
    files = fetch_folder(model_uri, model_out)
    print(f"copied the model folder ({len(files)} files) from {model_uri}")
    summary_path = model_out / "summary.json"
    if not summary_path.is_file():
        raise SkinattnError(f"the TrainJob completed but {model_uri} holds no summary.json (did node 0 publish?)")
    return json.loads(summary_path.read_text(encoding="utf-8"))
