"""An ASGI middleware that refuses oversized or wrongly typed uploads before BentoML parses them.

BentoML reads a whole multipart body (spooling files to disk) before the endpoint runs, so a byte limit
checked inside the endpoint comes too late to protect the server. This guard answers 413 as soon as the
declared ``Content-Length`` or the bytes actually received pass the limit, and 415 when the request is not
``multipart/form-data``, both as JSON ``{"error": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json_error(send: Send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer with ``{"error": message}``, the given status and any extra ``headers``."""
    body = json.dumps({"error": message}).encode("utf-8")
    extra = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()]
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


async def check_form(scope: Scope, body: bytes, file_field: str) -> str | None:
    """Why a multipart body is unacceptable, or None: it must parse, hold exactly one file, in
    ``file_field``, and no other file (BentoML answers a file in a non-file field with a 500)."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():  # noqa: ANN202 - the parser's input: the buffered body in one chunk
        yield body

    try:
        form = await MultiPartParser(Headers(scope=scope), stream()).parse()
    except MultiPartException as exc:
        return f"malformed multipart/form-data body ({exc})"
    try:
        files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
        names = sorted({key for key, _ in files})
        if not files:
            return f"no file in the upload: send the image in the multipart field {file_field!r}"
        if names != [file_field] or len(files) > 1:
            return f"send exactly one file, in the field {file_field!r} (got files in {names})"
        return None
    finally:
        await form.close()


class UploadGuard:
    """Wraps the app; applies to POST requests whose path is one of ``paths``.

    The body of a guarded request is read here (at most ``max_bytes``), its form structure checked, and
    replayed to the app, so memory per request is bounded by the limit whatever the client declares.
    """

    def __init__(self, app: ASGIApp, paths: Iterable[str], max_bytes: int, file_field: str = "image") -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.max_bytes = int(max_bytes)
        self.file_field = file_field

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        content_type = headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "multipart/form-data":
            await send_json_error(
                send,
                415,
                f"expected a multipart/form-data upload with the image in the field 'image', got content type "
                f"{content_type or 'none'!r} (e.g. curl -F image=@lesion.jpg ...)",
            )
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json_error(send, 413, f"upload is {int(declared):,} bytes, over the limit of {self.max_bytes:,} bytes")
            return

        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nothing to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await send_json_error(send, 413, f"upload is over the limit of {self.max_bytes:,} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        problem = await check_form(scope, body, self.file_field)
        if problem is not None:
            await send_json_error(send, 400, problem)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: pass disconnects through

        await self.app(scope, replay, send)
