"""An optional bearer token in front of the service: an ASGI middleware, applied before anything else of ours.

With a token configured (``SKINATTN_API_TOKEN``, in Kubernetes from the Secret ``skinattn-serving-auth``),
every request needs ``Authorization: Bearer <token>`` except the probes and the metrics (:data:`OPEN_PATHS`),
which Kubernetes and Prometheus call without credentials. A missing or wrong token gets 401 with a
``WWW-Authenticate: Bearer`` challenge (RFC 6750) and ``{"error": ...}``, before the body is read, so an
anonymous client cannot make the server buffer an upload. Tokens are compared in constant time (their
SHA-256 digests with :func:`hmac.compare_digest`, so not even the length leaks). Without a token the service
is open, and says so in its log at start.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

from serving.guard import ASGIApp, Receive, Scope, Send, send_json_error

TOKEN_ENV = "SKINATTN_API_TOKEN"
MIN_TOKEN_LENGTH = 16
# Kubernetes' probes and Prometheus: never behind the token.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
REALM = "skinattn"
# RFC 6750's b64token: what may follow "Bearer " in a header.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


class BadToken(ValueError):
    """The configured token cannot be used; the message says why (never the token itself)."""


def configured_token(environ: Mapping[str, str]) -> str | None:
    """The token from ``SKINATTN_API_TOKEN``, or None when it is unset or blank (the service is then open).

    Surrounding whitespace is dropped (a Secret made with ``--from-file`` often ends in a newline).

    Raises:
        BadToken: shorter than :data:`MIN_TOKEN_LENGTH`, or characters a bearer token cannot carry.
    """
    token = (environ.get(TOKEN_ENV) or "").strip()
    if not token:
        return None
    if not _B64TOKEN.fullmatch(token):
        raise BadToken(f"{TOKEN_ENV} has characters a bearer token cannot carry; use letters, digits and "
                       "-._~+/ only (e.g. `openssl rand -hex 32`)")  # fmt: skip
    if len(token) < MIN_TOKEN_LENGTH:
        raise BadToken(f"{TOKEN_ENV} is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH} "
                       "(e.g. `openssl rand -hex 32`)")  # fmt: skip
    return token


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def bearer_credentials(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The credentials of the ``Authorization: Bearer ...`` header, or None (absent, or another scheme)."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class BearerTokenAuth:
    """Wraps the app: requests outside ``open_paths`` need the bearer ``token``."""

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        if not token:
            raise BadToken("BearerTokenAuth needs a token; without one, do not add the middleware")
        self.app = app
        self.open_paths = frozenset(open_paths)
        self._expected = _digest(token)

    def accepts(self, credentials: str | None) -> bool:
        """Whether ``credentials`` are the token, compared in constant time."""
        return credentials is not None and hmac.compare_digest(_digest(credentials), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        credentials = bearer_credentials(scope.get("headers") or ())
        if self.accepts(credentials):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        if credentials is None:
            challenge = f'Bearer realm="{REALM}"'
            message = "missing bearer token: send the header 'Authorization: Bearer <token>'"
        else:
            challenge = f'Bearer realm="{REALM}", error="invalid_token"'
            message = "invalid bearer token"
        await send_json_error(send, 401, message, headers={"www-authenticate": challenge})
