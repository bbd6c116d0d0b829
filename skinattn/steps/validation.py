"""Step of the validation components (``components/validation.py``): the first task of every pipeline.

It checks again what the CLI checks (:mod:`skinattn.run_parameters`), because a run started from the KFP UI
never passes through the CLI, and what only the cluster can see: the data's bucket reachable with the
pods' S3 settings and its prefix not empty, the registry and output buckets reachable, and (best effort)
a GPU node able to take the GPU request. It costs seconds and is never retried: whatever it finds wrong
would be just as wrong on a second try.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from skinattn.run_parameters import ParameterError, Problem, check_parameters

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
API_TIMEOUT_S = 10.0


def validate_run_step(
    pipeline: str,
    params: dict[str, Any],
    *,
    gpu_parameter: str | None = None,
    gpu_resource: str = "nvidia.com/gpu",
    gpu_node_selector: str = "",
    train_deadline_hours: float = 0.0,
) -> None:
    """Check a run's parameters in the pod; print what was checked; raise ParameterError naming every problem.

    ``gpu_parameter`` names the parameter holding the GPU request per pod (``gpus``, ``gpus_per_shard``);
    ``gpu_node_selector`` is the GPU pool's ``key=value`` label; ``train_deadline_hours`` the train pod's
    activeDeadlineSeconds in hours (0: no train step).
    """
    report = check_parameters(params, reach="pod", train_deadline_hours=train_deadline_hours or None)
    bad = {problem.parameter for problem in report.problems}
    if gpu_parameter and gpu_parameter not in bad:
        problem, note = gpu_request_check(gpu_parameter, params[gpu_parameter], gpu_resource, gpu_node_selector)
        if problem is not None:
            report.problems.append(problem)
        report.notes.append(note)
    for line in report.notes:
        print(f"checked: {line}")
    for line in report.warnings:
        print(f"warning: {line}")
    if report.problems:
        raise ParameterError(pipeline, report.problems)
    print(f"the {pipeline} run's {len(params)} parameters are valid")


def gpu_request_check(
    parameter: str,
    gpus: Any,
    resource: str,
    node_selector: str,
    *,
    api: str | None = None,
    token: str | None = None,
    ca_file: str | None = None,
) -> tuple[Problem | None, str]:
    """``(problem, note)``: a problem only when the nodes of the GPU pool can be listed, there are some, and
    none has ``gpus`` allocatable ``resource``. Everything else (not in a pod, no RBAC to list nodes, an
    empty pool that an autoscaler may grow) is a note for the log, never a failure.

    ``api``/``token``/``ca_file`` default to the pod's in-cluster API server and service account.
    """
    gpus = int(gpus)
    if gpus <= 0:
        return None, f"{parameter}: no GPU requested"
    if api is None:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host or not (SERVICE_ACCOUNT_DIR / "token").is_file():
            return None, f"{parameter}: not in a Kubernetes pod, GPU availability not checked"
        api = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        token = (SERVICE_ACCOUNT_DIR / "token").read_text(encoding="utf-8").strip()
        ca_file = str(SERVICE_ACCOUNT_DIR / "ca.crt")
    try:
        nodes = _list_nodes(api, token, ca_file, node_selector)
    except urllib.error.HTTPError as exc:
        why = "this pod's service account may not list nodes (RBAC)" if exc.code in (401, 403) else f"HTTP {exc.code}"
        return None, f"{parameter}: GPU availability not checked: {why}"
    except (OSError, ValueError) as exc:  # URLError is an OSError; ValueError: a body that is not JSON
        return None, f"{parameter}: GPU availability not checked: cannot list nodes ({exc})"
    pool = f"nodes labelled {node_selector}" if node_selector else "nodes"
    ready = [node for node in nodes if not node.get("spec", {}).get("unschedulable")]
    if not ready:
        return None, f"{parameter}: no schedulable {pool} now (an autoscaler may add one); not refused"
    most = max(_quantity(node.get("status", {}).get("allocatable", {}).get(resource)) for node in ready)
    if most >= gpus:
        return None, f"{parameter}: {gpus} {resource} fit on a node ({len(ready)} schedulable {pool}, up to {most} each)"
    return Problem(parameter, gpus, f"no schedulable node among the {len(ready)} {pool} has {gpus} allocatable "
                   f"{resource} (the most is {most}): the pod would wait unscheduled"), "GPU request refused"  # fmt: skip


def _list_nodes(api: str, token: str | None, ca_file: str | None, node_selector: str) -> list[dict[str, Any]]:
    query = f"?{urllib.parse.urlencode({'labelSelector': node_selector})}" if node_selector else ""
    request = urllib.request.Request(f"{api.rstrip('/')}/api/v1/nodes{query}", headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=ca_file) if api.startswith("https") else None
    with urllib.request.urlopen(request, timeout=API_TIMEOUT_S, context=context) as response:
        return list(json.loads(response.read().decode("utf-8")).get("items") or [])


def _quantity(value: Any) -> int:
    """A whole-number Kubernetes quantity (extended resources like nvidia.com/gpu are integers); else 0."""
    try:
        return int(str(value))
    except ValueError:
        return 0
