"""The HTTP plumbing shared by the API stand-ins of the tests (tests/pipelines/_kfp_stand_in.py for KFP's REST
API, tests/trainjob/_k8s_stand_in.py for the Kubernetes API): a threaded server on a free port of 127.0.0.1,
every request recorded (method, path, query, JSON body or uploaded files, answered status), JSON answers.
A subclass gives ``_route`` (request -> status, body) and ``_error_body`` (how its API spells an error)."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NO_ROUTE = "<no route>"  # what a request without a route records as its body


@dataclass
class RecordedRequest:
    """One request as it reached the server."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # form field -> (file name, content)
    status: int = 0


class HttpError(Exception):
    """An error answer: ``status`` and, for APIs that carry one (Kubernetes' Status), a ``reason``."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class HttpStandIn:
    """Serves ``_route`` on a free port of 127.0.0.1 while used as a context manager."""

    thread_name = "http-stand-in"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()  # one request at a time touches the state (RLock: scripts may re-enter)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to implement ---------------------------------------------------------------------------------
    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        raise NotImplementedError

    def _error_body(self, error: HttpError) -> Any:
        return {"error": str(error), "message": str(error), "code": error.status}

    # -- lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- for assertions -------------------------------------------------------------------------------
    def unknown_calls(self) -> list[str]:
        """``METHOD path`` of every request answered 404 for lack of a route."""
        return [f"{r.method} {r.path}" for r in self.requests if r.status == 404 and r.json == NO_ROUTE]

    def no_route(self, request: RecordedRequest, message: str) -> HttpError:
        """The 404 of a request no route knows, marked so that ``unknown_calls`` lists it."""
        request.json = NO_ROUTE
        return HttpError(404, message, "NotFound")

    # -- HTTP plumbing --------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 expects from a real server

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                stand_in._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                stand_in._serve(self, "POST")

            def do_DELETE(self) -> None:  # noqa: N802
                stand_in._serve(self, "DELETE")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the recorded requests are the log

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = RecordedRequest(method, parts.path, parse_qs(parts.query, keep_blank_values=True))
        content_type = handler.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            request.files = multipart_files(content_type, raw)
        elif raw:
            try:
                request.json = json.loads(raw)
            except ValueError:
                request.json = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(request)
            try:
                status, body = self._route(request)
            except HttpError as exc:
                status, body = exc.status, self._error_body(exc)
            request.status = status
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def multipart_files(content_type: str, raw: bytes) -> dict[str, tuple[str, bytes]]:
    """The file fields of a multipart/form-data body: field name -> (file name, content)."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP)
    files = {}
    for part in message.iter_parts():
        if part.get_filename() is not None:
            files[part.get_param("name", header="content-disposition")] = (part.get_filename(), part.get_payload(decode=True))
    return files


def single(query: dict[str, list[str]], key: str) -> str:
    """The one value of a query parameter ("" when absent)."""
    values = query.get(key) or [""]
    return values[0]
