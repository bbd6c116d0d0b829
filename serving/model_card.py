"""``GET /model-card``: the served model's card, as Markdown (default) or, with ``?format=json``, its fields.

The card lives in the BentoML model's folder (``MODEL_CARD.md`` + ``model_card.json``, written by
:func:`write_card_files` at export, see ``serving/export.py``), so this route reads two small files and never
touches the weights or the model service. A model exported before cards existed gets its card built in memory
from the folder's ``model.json`` (and ``metrics.json``). It is an ASGI middleware rather than a BentoML API:
BentoML's APIs are POST with a JSON or multipart body, and a card is a plain GET of a document. It is added inside the
bearer-token middleware, so with ``SKINATTN_API_TOKEN`` set it needs the token like ``/classify``: only
Kubernetes' probes and Prometheus' ``/metrics`` stay open (docs/serving.md, "Authentication").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

from serving.guard import ASGIApp, Receive, Scope, Send, send_json_error
from skinattn.fileio import atomic_open
from skinattn.model_card import CARD_JSON, CARD_MARKDOWN, card_files
from skinattn.models.weights import CARD_FILE

MODEL_CARD_ROUTE = "/model-card"
_TYPES = {"markdown": (CARD_MARKDOWN, b"text/markdown; charset=utf-8"), "json": (CARD_JSON, b"application/json")}
METRICS_FILE = "metrics.json"


def write_card_files(folder: Path, weights_sha256: str | None = None) -> None:
    """Make sure ``folder`` (a model being exported) holds ``MODEL_CARD.md`` and ``model_card.json``.

    A registry version brings the card it was registered with; a model folder, or a version registered before
    cards were stored, gets one built here from its ``model.json`` (and ``metrics.json`` when present)."""
    if (folder / CARD_MARKDOWN).is_file() and (folder / CARD_JSON).is_file():
        return
    for name, text in _card_texts(folder, weights_sha256).items():
        with atomic_open(folder / name) as handle:
            handle.write(text)


def _card_texts(folder: Path, weights_sha256: str | None = None) -> dict[str, str]:
    """The card's files as text, built from ``folder``'s ``model.json`` (and ``metrics.json`` when present)."""
    model_json = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    metrics_path = folder / METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else None
    return card_files(model_json, metrics, weights_sha256=weights_sha256)


class ModelCardRoute:
    """Wraps the app; answers ``GET``/``HEAD`` on :data:`MODEL_CARD_ROUTE` from the files of ``model_folder()``
    (called on first use: the model is resolved once the server runs) and passes everything else on."""

    def __init__(self, app: ASGIApp, model_folder: Callable[[], Path]) -> None:
        self.app = app
        self.model_folder = model_folder
        self._cache: dict[str, bytes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != MODEL_CARD_ROUTE:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_json_error(send, 405, f"{MODEL_CARD_ROUTE} answers GET only", headers={"Allow": "GET, HEAD"})
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        wanted = (query.get("format") or ["markdown"])[0]
        if wanted not in _TYPES:
            await send_json_error(send, 400, f"format must be one of {sorted(_TYPES)}, got {wanted!r}")
            return
        name, content_type = _TYPES[wanted]
        try:
            body = self._cache.get(name) or self._read(name)
        except OSError as exc:
            await send_json_error(send, 404, f"this model has no {name} ({exc.__class__.__name__}); export it again")
            return
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    def _read(self, name: str) -> bytes:
        # A BentoML model never changes under its tag, so each file is read once per process. A model exported
        # before cards existed has none in its folder (and export skips a model it already holds), so its card
        # is built here from the folder's model.json (+ metrics.json) and kept in memory only: BentoML's store
        # is not written to. Only a folder without model.json answers 404.
        folder = Path(self.model_folder())
        try:
            self._cache[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            for card_name, text in _card_texts(folder).items():
                self._cache.setdefault(card_name, text.encode("utf-8"))
        return self._cache[name]
