"""Submitting, uploading and scheduling pipelines on a Kubeflow Pipelines backend (``kfp.Client``).

The keyword arguments of every ``kfp.Client`` call are built by the pure ``*_arguments`` functions (tested
without a cluster); ``submit``, ``upload`` and ``schedule`` only pass them on. Runs use the pipeline runner
service account of ``infra/cluster.env`` unless told otherwise, so their pods get the RBAC infra/k8s grants,
and its pipeline root (``SKINATTN_PIPELINE_ROOT``), so their artifacts go to the project's bucket.
"""

import datetime as dt
from typing import Any

from skinattn_pipelines import PipelineError
from skinattn_pipelines.cron import validate_cron


def default_version_name(pipeline_name: str, now: dt.datetime | None = None) -> str:
    """``<pipeline>-<UTC timestamp>``: version names must be unique within a pipeline."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{pipeline_name}-{now.strftime('%Y%m%d-%H%M%S')}"


def resolve_pipeline_root(given: str | None) -> str:
    """``--pipeline-root`` as given, else ``SKINATTN_PIPELINE_ROOT`` of infra/cluster.env; refused before
    anything is sent when KFP's launcher could not write there (every task would fail at its first output)."""
    from skinattn_components.cluster import check_pipeline_root, pipeline_root

    if not given:
        return pipeline_root()
    try:
        return check_pipeline_root(given)
    except ValueError as exc:
        raise PipelineError(f"--pipeline-root: {exc}") from None


def run_arguments(
    package_path: str,
    arguments: dict[str, Any],
    *,
    experiment: str,
    run_name: str | None,
    service_account: str,
    namespace: str | None = None,
    pipeline_root: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``Client.create_run_from_pipeline_package``; ``pipeline_root`` goes into the run's
    runtime config, where it wins over the package's and the launcher's default."""
    if not experiment.strip():
        raise PipelineError("--experiment must not be empty")
    return {
        "pipeline_file": package_path,
        "arguments": dict(arguments),
        "run_name": run_name,
        "experiment_name": experiment,
        "namespace": namespace,
        "service_account": service_account,
        "pipeline_root": pipeline_root,
    }


def upload_arguments(
    package_path: str, pipeline_name: str, pipeline_id: str | None, version_name: str, description: str
) -> tuple[str, dict[str, Any]]:
    """``(method, kwargs)``: a new pipeline when none is called ``pipeline_name`` yet, else a new version of it."""
    if pipeline_id is None:
        return "upload_pipeline", {
            "pipeline_package_path": package_path,
            "pipeline_name": pipeline_name,
            "description": description,
        }
    return "upload_pipeline_version", {
        "pipeline_package_path": package_path,
        "pipeline_version_name": version_name,
        "pipeline_id": pipeline_id,
        "description": description,
    }


def recurring_run_arguments(
    *,
    experiment_id: str,
    pipeline_id: str,
    version_id: str,
    job_name: str,
    cron: str,
    arguments: dict[str, Any],
    service_account: str,
    max_concurrency: int = 1,
    catchup: bool = False,
    pipeline_root: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``Client.create_recurring_run`` (which needs experiment, pipeline AND version ids)."""
    if max_concurrency < 1:
        raise PipelineError(f"--max-concurrency must be at least 1, got {max_concurrency}")
    return {
        "experiment_id": experiment_id,
        "job_name": job_name,
        "cron_expression": validate_cron(cron),
        "params": dict(arguments),
        "pipeline_id": pipeline_id,
        "version_id": version_id,
        "max_concurrency": max_concurrency,
        # A backend that was down should not fire every missed night at once when it comes back.
        "no_catchup": not catchup,
        "enabled": True,
        "service_account": service_account,
        # In every run it starts (runtime config), as for a submitted run.
        "pipeline_root": pipeline_root,
    }


def connect(host: str, namespace: str | None = None):
    """A ``kfp.Client`` for ``host`` (authentication as kfp.Client finds it: token files, env, ...)."""
    import kfp

    try:
        return kfp.Client(host=host, namespace=namespace)
    except remote_errors() as exc:
        raise PipelineError(f"cannot reach the KFP API at {host}: {describe_remote_error(exc)}") from None


def remote_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the backend refused or could not be reached (kfp_server_api / urllib3 / sockets)."""
    import kfp_server_api
    import urllib3

    return (kfp_server_api.ApiException, urllib3.exceptions.HTTPError, OSError)


def describe_remote_error(exc: BaseException) -> str:
    """One line for a backend error: HTTP status and reason, or the connection failure."""
    status = getattr(exc, "status", None)
    if status is not None:
        body = str(getattr(exc, "body", "") or "").strip().replace("\n", " ")
        return f"HTTP {status} {getattr(exc, 'reason', '')}: {body[:300]}".strip()
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: {reason or exc}"


def submit(client, package_path: str, arguments: dict[str, Any], **options: Any) -> str:
    """Start one run; returns its id."""
    result = client.create_run_from_pipeline_package(**run_arguments(package_path, arguments, **options))
    return result.run_id


def upload(
    client, package_path: str, pipeline_name: str, version_name: str, description: str
) -> tuple[str, str, str]:
    """Upload the package as a new pipeline or a new version of it; returns ``(pipeline_id, version_id, version_name)``.

    A new pipeline gets its first version from the backend, named by the backend (the upload endpoint takes
    no version name), so ``version_name`` only names later versions; the name returned is the server's.
    """
    pipeline_id = client.get_pipeline_id(pipeline_name)
    method, kwargs = upload_arguments(package_path, pipeline_name, pipeline_id, version_name, description)
    uploaded = getattr(client, method)(**kwargs)
    if pipeline_id is None:
        pipeline_id = uploaded.pipeline_id
        versions = client.list_pipeline_versions(pipeline_id=pipeline_id, page_size=1, sort_by="created_at desc")
        uploaded = versions.pipeline_versions[0]
    return pipeline_id, uploaded.pipeline_version_id, uploaded.display_name


def schedule(client, *, experiment: str, namespace: str | None = None, **options: Any) -> str:
    """Create (or reuse) the experiment and a recurring run of an uploaded version; returns the recurring run id."""
    experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
    recurring = client.create_recurring_run(**recurring_run_arguments(experiment_id=experiment_id, **options))
    return recurring.recurring_run_id
