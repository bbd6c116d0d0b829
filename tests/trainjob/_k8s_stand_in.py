"""A stand-in for the few Kubernetes API endpoints the TrainJob launcher calls, for tests that drive the real
``kubernetes`` client (the pattern of tests/pipelines/_kfp_stand_in.py).

It serves, over real HTTP on 127.0.0.1: TrainJobs (``trainer.kubeflow.org/v1alpha1``) create / get /
delete in a namespace, pods list by label selector, events list by field selector (``type=Warning``). State
lives in memory and the answers follow the real API server where the launcher depends on it: 201 with the
stored object (uid, resourceVersion, creationTimestamp added), 409 AlreadyExists, 404 NotFound and 422 Invalid
as ``Status`` objects, a namespace in the body that disagrees with the path refused, a delete that takes the
TrainJob's pods with it. A created TrainJob is validated as the API server and Trainer's webhook would
(``validate``, by default ``tests/trainjob/_trainer_api.py``: the v2.2 API models plus the CRD's name rules
and the Torch plugin's reserved variables). Every request is recorded; anything else answers 404 and is
recorded as ``<no route>``.

What the cluster would do after a create is scripted by the test: ``script(stand_in, name, poll)`` runs on
every GET of a TrainJob (``poll`` counts from 0) and may change its status, add pods and events. It is NOT
a controller: nothing is scheduled or run.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from typing import Any

from _http_stand_in import HttpError, HttpStandIn, RecordedRequest, single

TRAINJOBS = re.compile(r"/apis/trainer\.kubeflow\.org/v1alpha1/namespaces/([^/]+)/trainjobs(?:/([^/]+))?")
PODS = re.compile(r"/api/v1/namespaces/([^/]+)/pods")
EVENTS = re.compile(r"/api/v1/namespaces/([^/]+)/events")
TIME = "2026-03-20T10:00:00Z"


class _HttpError(HttpError):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(status, message, reason)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}  # fmt: skip


def pod(name: str, instance: str, phase: str, *, waiting: tuple[str, str] | None = None,
        terminated: tuple[str, int] | None = None, node: str | None = None,
        unschedulable: str | None = None) -> dict[str, Any]:  # fmt: skip
    """A trainer pod as the API returns it (the fields the launcher reads)."""
    state: dict[str, Any] = {}
    if waiting:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif terminated:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1]}}
    elif phase == "Running":
        state = {"running": {"startedAt": TIME}}
    status: dict[str, Any] = {"phase": phase}
    if state:
        status["containerStatuses"] = [{"name": "node", "image": "x", "imageID": "", "ready": phase == "Running",
                                        "restartCount": 0, "state": state}]  # fmt: skip
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}]
    spec: dict[str, Any] = {"containers": [{"name": "node", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "", "uid": f"uid-{name}",
                         "labels": {"app.kubernetes.io/instance": instance}},
            "spec": spec, "status": status}  # fmt: skip


def event(name: str, kind: str, involved: str, reason: str, message: str, *, type_: str = "Warning", count: int = 1) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "", "uid": f"uid-{name}"},
            "involvedObject": {"kind": kind, "name": involved}, "reason": reason, "message": message,
            "type": type_, "count": count}  # fmt: skip


def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": TIME}


class KubernetesStandIn(HttpStandIn):
    """In-memory TrainJobs, pods and events on a free port of 127.0.0.1; use as a context manager."""

    thread_name = "k8s-stand-in"

    def __init__(self, script: Callable[[KubernetesStandIn, str, int], None] | None = None,
                 validate: Callable[[dict[str, Any]], list[str]] | None = None,
                 on_create: Callable[[KubernetesStandIn, dict[str, Any]], None] | None = None) -> None:  # fmt: skip
        if validate is None:
            from _trainer_api import validate_trainjob

            validate = validate_trainjob
        super().__init__()
        self.script, self.validate, self.on_create = script, validate, on_create
        self.trainjobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []  # every accepted TrainJob body, as POSTed
        self.deleted: list[str] = []
        self.polls: dict[str, int] = {}
        self.refuse_create: tuple[int, str, str] | None = None  # e.g. (403, "Forbidden", "...")
        self._ids = itertools.count(1)

    def api_client(self) -> Any:
        """A real ``kubernetes.client.ApiClient`` pointed at this stand-in."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    # -- what tests use in scripts and assertions ----------------------------------------------------
    def trainjob(self, name: str, namespace: str = "kubeflow") -> dict[str, Any]:
        return self.trainjobs[(namespace, name)]

    def set_conditions(self, name: str, *conditions: dict[str, Any], namespace: str = "kubeflow") -> None:
        self.trainjob(name, namespace).setdefault("status", {})["conditions"] = list(conditions)

    def put_pod(self, body: dict[str, Any], namespace: str = "kubeflow") -> None:
        body["metadata"]["namespace"] = namespace
        self.pods[(namespace, body["metadata"]["name"])] = body

    def add_event(self, body: dict[str, Any], namespace: str = "kubeflow") -> None:
        body["metadata"]["namespace"] = namespace
        self.events = [e for e in self.events if e["metadata"]["name"] != body["metadata"]["name"]] + [body]

    def calls(self, method: str, pattern: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    def _error_body(self, error: HttpError) -> Any:
        return status_body(error.status, error.reason, str(error))

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        method, path = request.method, request.path
        if match := TRAINJOBS.fullmatch(path):
            namespace, name = match[1], match[2]
            if method == "POST" and name is None:
                return 201, self._create(namespace, request.json)
            if method == "GET" and name:
                return 200, self._get(namespace, name)
            if method == "DELETE" and name:
                return 200, self._delete(namespace, name)
        if method == "GET" and (match := PODS.fullmatch(path)):
            selector = dict(p.split("=", 1) for p in single(request.query, "labelSelector").split(",") if p)
            items = [p for (ns, _), p in sorted(self.pods.items()) if ns == match[1]
                     and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]  # fmt: skip
            return 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
        if method == "GET" and (match := EVENTS.fullmatch(path)):
            fields = dict(p.split("=", 1) for p in single(request.query, "fieldSelector").split(",") if p)
            unknown = set(fields) - {"type"}
            if unknown:
                raise _HttpError(400, "BadRequest", f"the stand-in filters events by type only, got {sorted(unknown)}")
            items = [e for e in self.events if e["metadata"]["namespace"] == match[1]
                     and all(e.get(k) == v for k, v in fields.items())]  # fmt: skip
            return 200, {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": items}
        raise self.no_route(request, f"the Kubernetes stand-in has no route for {method} {path}")

    def _create(self, namespace: str, body: Any) -> dict[str, Any]:
        if self.refuse_create:
            raise _HttpError(*self.refuse_create)
        if not isinstance(body, dict) or body.get("kind") != "TrainJob" or body.get("apiVersion") != "trainer.kubeflow.org/v1alpha1":
            raise _HttpError(400, "BadRequest", "not a trainer.kubeflow.org/v1alpha1 TrainJob")
        meta = body.get("metadata") or {}
        if meta.get("namespace") not in (None, namespace):
            raise _HttpError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
        problems = self.validate(body)
        if problems:
            raise _HttpError(422, "Invalid", f'TrainJob.trainer.kubeflow.org "{meta.get("name")}" is invalid: ' + "; ".join(problems))
        name = meta["name"]
        if (namespace, name) in self.trainjobs:
            raise _HttpError(409, "AlreadyExists", f'trainjobs.trainer.kubeflow.org "{name}" already exists')
        self.created.append(json.loads(json.dumps(body)))
        stored = json.loads(json.dumps(body))
        stored["metadata"].update(namespace=namespace, uid=f"trainjob-uid-{next(self._ids)}", resourceVersion="1",
                                  creationTimestamp=TIME)  # fmt: skip
        self.trainjobs[(namespace, name)] = stored
        if self.on_create:
            self.on_create(self, stored)
        return stored

    def _get(self, namespace: str, name: str) -> dict[str, Any]:
        if (namespace, name) not in self.trainjobs:
            raise _HttpError(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{name}" not found')
        poll = self.polls.get(name, 0)
        self.polls[name] = poll + 1
        if self.script:
            self.script(self, name, poll)
        if (namespace, name) not in self.trainjobs:  # the script deleted it
            raise _HttpError(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{name}" not found')
        return self.trainjobs[(namespace, name)]

    def _delete(self, namespace: str, name: str) -> dict[str, Any]:
        if self.trainjobs.pop((namespace, name), None) is None:
            raise _HttpError(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{name}" not found')
        self.deleted.append(name)
        for key, body in list(self.pods.items()):
            if key[0] == namespace and body["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == name:
                del self.pods[key]
        return status_body(200, "", "") | {"details": {"name": name, "group": "trainer.kubeflow.org", "kind": "trainjobs"}}
