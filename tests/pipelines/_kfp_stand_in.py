"""A stand-in for the Kubeflow Pipelines v2beta1 REST API, for tests that drive the real ``kfp.Client``.

It serves, over real HTTP on 127.0.0.1, only the endpoints that ``kfp.Client`` (kfp 2.17) calls for
``skinattn pipeline submit|upload|schedule``: healthz; experiments list (``display_name`` filter) / create
/ get; pipelines list (``display_name`` filter), upload, upload_version and list versions; runs create;
recurring runs create. State lives in memory and the answers carry the fields the client reads, with the
same rules as the real backend where our code depends on them: a pipeline upload also creates its first
version, names are unique (409 otherwise), and runs and recurring runs must reference an existing
experiment (and pipeline version). Every request is recorded (method, path, query, JSON body or uploaded
files) so that a test asserts on what reached the server. Anything else answers 404 and is recorded as
well, so a failing test shows which call the client made that this stand-in does not know.

It is NOT a KFP backend: nothing is compiled, validated beyond that, scheduled or run.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from _http_stand_in import HttpError, HttpStandIn, RecordedRequest, single

API = "/apis/v2beta1"
EQUALS = 1  # kfp.client's _FILTER_OPERATIONS["EQUALS"]; the backend also accepts the enum name
_HttpError = HttpError  # KFP's errors carry a status and a message


class KfpStandIn(HttpStandIn):
    """In-memory KFP v2beta1 API on a free port of 127.0.0.1; use as a context manager."""

    thread_name = "kfp-stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}  # version id -> version (with "pipeline_id")
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self._ids = itertools.count(1)

    # -- queries for tests -------------------------------------------------------------------------
    def calls(self, method: str, path: str) -> list[RecordedRequest]:
        """The recorded requests with this method and exact path."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- the API -----------------------------------------------------------------------------------
    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        return 200, self._answer(request)

    def _answer(self, request: RecordedRequest) -> dict:
        method, path = request.method, request.path
        if (method, path) == ("GET", f"{API}/healthz"):
            return {"multi_user": False, "pipeline_store": "database"}
        if (method, path) == ("GET", f"{API}/experiments"):
            return _listing("experiments", _filtered(self.experiments.values(), request))
        if (method, path) == ("POST", f"{API}/experiments"):
            return self._create_experiment(request.json or {})
        if method == "GET" and (match := re.fullmatch(f"{API}/experiments/([^/:]+)", path)):
            return self._get(self.experiments, match[1], "experiment")
        if (method, path) == ("GET", f"{API}/pipelines"):
            return _listing("pipelines", _filtered(self.pipelines.values(), request))
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            return self._upload_pipeline(request)
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            return self._upload_version(request)
        if method == "GET" and (match := re.fullmatch(f"{API}/pipelines/([^/]+)/versions", path)):
            self._get(self.pipelines, match[1], "pipeline")
            versions = [v for v in self.versions.values() if v["pipeline_id"] == match[1]]
            return _listing("pipeline_versions", _sorted_page(versions, request), total=len(versions))
        if (method, path) == ("POST", f"{API}/runs"):
            return self._create_run(request.json or {})
        if (method, path) == ("POST", f"{API}/recurringruns"):
            return self._create_recurring_run(request.json or {})
        raise self.no_route(request, f"the KFP stand-in has no route for {method} {path}")

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}"

    def _timestamp(self) -> str:
        # Strictly increasing, so "created_at desc" has one answer.
        return f"2026-01-01T00:{len(self.requests) // 60:02d}:{len(self.requests) % 60:02d}Z"

    @staticmethod
    def _get(table: dict[str, dict], key: str, kind: str) -> dict:
        if key not in table:
            raise _HttpError(404, f"{kind} {key} not found")
        return table[key]

    def _create_experiment(self, body: dict) -> dict:
        name = body.get("display_name") or ""
        if not name:
            raise _HttpError(400, "experiment display_name is empty")
        if any(e["display_name"] == name for e in self.experiments.values()):
            raise _HttpError(409, f"experiment {name!r} already exists")
        experiment = {
            "experiment_id": self._new_id("experiment"),
            "display_name": name,
            "description": body.get("description") or "",
            "namespace": body.get("namespace") or "",
            "created_at": self._timestamp(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _uploaded_file(self, request: RecordedRequest) -> bytes:
        if "uploadfile" not in request.files:
            raise _HttpError(400, f"no 'uploadfile' form field (got {sorted(request.files)})")
        return request.files["uploadfile"][1]

    def _add_version(self, pipeline_id: str, name: str, description: str, package: bytes) -> dict:
        if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in self.versions.values()):
            raise _HttpError(409, f"pipeline version {name!r} already exists")
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._new_id("version"),
            "display_name": name,
            "description": description,
            "created_at": self._timestamp(),
        }
        self.versions[version["pipeline_version_id"]] = {**version, "package": package}
        return version

    def _upload_pipeline(self, request: RecordedRequest) -> dict:
        package = self._uploaded_file(request)
        name = single(request.query, "name") or single(request.query, "display_name")
        if not name:
            raise _HttpError(400, "pipeline name is empty")
        if any(p["display_name"] == name for p in self.pipelines.values()):
            raise _HttpError(409, f"pipeline {name!r} already exists")
        description = single(request.query, "description")
        pipeline = {
            "pipeline_id": self._new_id("pipeline"),
            "display_name": name,
            "description": description,
            "created_at": self._timestamp(),
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        # As the real backend does: the uploaded package becomes the pipeline's first version.
        self._add_version(pipeline["pipeline_id"], name, description, package)
        return pipeline

    def _upload_version(self, request: RecordedRequest) -> dict:
        package = self._uploaded_file(request)
        pipeline_id = single(request.query, "pipelineid")
        self._get(self.pipelines, pipeline_id, "pipeline")
        name = single(request.query, "name") or single(request.query, "display_name")
        if not name:
            raise _HttpError(400, "pipeline version name is empty")
        return self._add_version(pipeline_id, name, single(request.query, "description"), package)

    def _check_run_source(self, body: dict) -> None:
        self._get(self.experiments, body.get("experiment_id") or "", "experiment")
        reference = body.get("pipeline_version_reference")
        if reference:
            version = self._get(self.versions, reference.get("pipeline_version_id") or "", "pipeline version")
            if version["pipeline_id"] != reference.get("pipeline_id"):
                raise _HttpError(400, "pipeline version does not belong to the pipeline")
        elif not body.get("pipeline_spec"):
            raise _HttpError(400, "neither pipeline_spec nor pipeline_version_reference")

    def _create_run(self, body: dict) -> dict:
        self._check_run_source(body)
        run = {**body, "run_id": self._new_id("run"), "state": "PENDING", "created_at": self._timestamp()}
        self.runs[run["run_id"]] = run
        return run

    def _create_recurring_run(self, body: dict) -> dict:
        self._check_run_source(body)
        if not (body.get("trigger") or {}).get("cron_schedule") and not (body.get("trigger") or {}).get(
            "periodic_schedule"
        ):
            raise _HttpError(400, "recurring run without a trigger")
        recurring = {
            **body,
            "recurring_run_id": self._new_id("recurring"),
            "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
            "created_at": self._timestamp(),
        }
        self.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring


def _listing(key: str, items: list[dict], total: int | None = None) -> dict:
    # Like the backend's JSON (grpc-gateway), an empty list is left out rather than sent as [].
    if not items:
        return {}
    public = [{k: v for k, v in item.items() if k != "package"} for item in items]
    return {key: public, "total_size": total or len(items)}


def _filtered(items: Any, request: RecordedRequest) -> list[dict]:
    """Apply a ``filter`` query of EQUALS predicates (the only kind kfp.Client sends for lookups by name)."""
    items = list(items)
    raw = single(request.query, "filter")
    if not raw:
        return items
    for predicate in json.loads(raw).get("predicates", []):
        if predicate.get("operation") not in (EQUALS, "EQUALS"):
            raise _HttpError(400, f"the KFP stand-in only filters with EQUALS, got {predicate}")
        items = [item for item in items if item.get(predicate["key"]) == predicate.get("stringValue")]
    return items


def _sorted_page(items: list[dict], request: RecordedRequest) -> list[dict]:
    sort_by = single(request.query, "sort_by").split()
    if sort_by:
        items = sorted(items, key=lambda item: item.get(sort_by[0], ""), reverse=sort_by[-1:] == ["desc"])
    page_size = int(single(request.query, "page_size") or 0)
    return items[:page_size] if page_size > 0 else items
