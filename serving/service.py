"""The skinattn HTTP endpoint: a BentoML 1.4 service around one registered model.

Routes:
    POST /classify         multipart field ``image`` (one JPEG or PNG); optional field or query parameter
                           ``attention=true`` adds the attention grid and a base64 PNG overlay.
    POST /classify_batch   the batchable inner API (adaptive batching): prepared pixels in, one forward pass
                           per batch. /classify calls it, so concurrent uploads share a forward pass.
    GET  /livez /readyz /metrics   BentoML's probes (/readyz is 503 until the model is loaded) and Prometheus.

Settings come from environment variables, read when the module is imported (see ``docs/serving.md``):
``SKINATTN_MODEL_TAG`` (BentoML model, default ``skinattn:latest``), ``SKINATTN_MAX_UPLOAD_BYTES``,
``SKINATTN_MAX_PIXELS``, ``SKINATTN_DECODE_BUDGET_PIXELS``, ``SKINATTN_MAX_BATCH_SIZE``,
``SKINATTN_MAX_LATENCY_MS``, ``SKINATTN_WARMUP_PASSES``, ``SKINATTN_DEVICE``.
"""

import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import bentoml
import pydantic
from starlette.responses import JSONResponse

from serving.decode_budget import BudgetSpent, DecodeBudget
from serving.guard import UploadGuard
from serving.options import ACCEPTED, BadOption, attention_wanted
from serving.runtime import BatchResult, ServingModel
from serving.upload import UploadRejected, decode_upload, upload_pixels

logger = logging.getLogger("skinattn.serving")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None
    if number < 0:
        raise ValueError(f"environment variable {name}={value!r} must not be negative")
    return number


MODEL_TAG = os.environ.get("SKINATTN_MODEL_TAG") or "skinattn:latest"
MAX_UPLOAD_BYTES = _env_int("SKINATTN_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
MAX_PIXELS = _env_int("SKINATTN_MAX_PIXELS", 40_000_000)
MAX_BATCH_SIZE = max(2, _env_int("SKINATTN_MAX_BATCH_SIZE", 32))  # BentoML requires more than 1
MAX_LATENCY_MS = _env_int("SKINATTN_MAX_LATENCY_MS", 10_000)
WARMUP_PASSES = _env_int("SKINATTN_WARMUP_PASSES", 1)
# Pixels being decoded at once over all requests (serving/decode_budget.py): two images of the largest
# allowed size, about 600 MB of decoding memory, by default.
DECODE_BUDGET_PIXELS = _env_int("SKINATTN_DECODE_BUDGET_PIXELS", 2 * MAX_PIXELS)
# Seconds a client is asked to wait (Retry-After) when the decode budget is spent.
RETRY_AFTER_S = 1
# Room for the multipart framing (boundaries, part headers, the attention field) around the file itself.
_FORM_OVERHEAD_BYTES = 64 * 1024
CLASSIFY_ROUTE = "/classify"


class AttentionMap(pydantic.BaseModel):
    """Where the Soft Attention layer looked."""

    grid: list[list[float]] = pydantic.Field(description="alpha (sum of the K heads) on the SA layer's h×w grid, scaled to [0, 1]")
    overlay_png: str = pydantic.Field(description="base64 PNG: the grid upsampled over the image at the model's input size")


class Classification(pydantic.BaseModel):
    """The answer of /classify."""

    probabilities: dict[str, float] = pydantic.Field(description="per-class probability, in the model's class order")
    top_class: str
    model: str = pydantic.Field(description="BentoML model name")
    version: str = pydantic.Field(description="registry version of the model (BentoML model version otherwise)")
    attention: AttentionMap | None = pydantic.Field(default=None, description="present when attention=true was asked")


class BatchItem(pydantic.BaseModel):
    """One image's result from /classify_batch."""

    probabilities: list[float] = []
    attention: list[list[float]] | None = None
    error: str | None = None


def _error(ctx: bentoml.Context, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # BentoML copies ctx.response.status_code onto the response of an API that takes ctx: set both.
    ctx.response.status_code = status
    for name, value in (headers or {}).items():
        ctx.response.headers[name] = value
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@bentoml.service(
    name="skinattn",
    traffic={"timeout": 60},
    workers=1,
    # One forward pass at a time: /classify_batch is sync and runs in BentoML's thread pool of this size;
    # concurrency comes from batching, not from threads fighting over the same cores.
    threads=1,
)
class SkinattnClassifier:
    """Soft-Attention CNN classifier of dermoscopy images."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self._model: ServingModel | None = None
        self._load_error: str | None = None
        self._decode_budget = DecodeBudget(DECODE_BUDGET_PIXELS, MAX_PIXELS)
        # Load in the background: the server starts answering /livez at once and /readyz says 503 until
        # the weights are loaded and warmed up (the Kubernetes startup probe waits on /readyz).
        threading.Thread(target=self._load, name="skinattn-model-load", daemon=True).start()

    def _load(self) -> None:
        try:
            stored = self.bento_model
            device = os.environ.get("SKINATTN_DEVICE") or ("cuda" if _cuda_available() else "cpu")
            model = ServingModel(stored.path, device=device)
            metadata = stored.info.metadata or {}
            self.model_name = stored.tag.name
            self.model_version = str(metadata.get("version") or stored.tag.version)
            model.warm_up(MAX_BATCH_SIZE, WARMUP_PASSES)
            self._model = model
            logger.info(
                "loaded %s (%s, %s, input %d px) on %s",
                stored.tag, model.config.arch, self.model_version, model.config.input_size, device,
            )
        except Exception as exc:  # noqa: BLE001 - any failure must surface as a dead /livez, not a hang
            self._load_error = f"{type(exc).__name__}: {exc}"
            logger.exception("could not load model %s", MODEL_TAG)

    def __is_ready__(self) -> bool:
        return self._model is not None

    def __is_alive__(self) -> bool:
        # A model that failed to load will never become ready: report dead so that the orchestrator restarts.
        return self._load_error is None

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify_batch(self, images: list[str]) -> list[BatchItem]:
        """Inner API: each item is base64 of the (3, S, S) uint8 pixels of an image already resized to the
        model's input size. Concurrent calls are merged by BentoML's adaptive batching."""
        model = self._require_model()
        results: list[BatchResult] = model.classify(images)
        return [BatchItem(probabilities=r.probabilities, attention=r.attention, error=r.error) for r in results]

    @bentoml.api(route=CLASSIFY_ROUTE)
    async def classify(
        self,
        image: Path,
        ctx: bentoml.Context,
        # Any, not bool: the endpoint reads the value itself (serving.options) so that a bad one gets the
        # service's {"error": ...} answer instead of BentoML's validation body. The schema still says boolean.
        attention: Any = pydantic.Field(
            default=None,
            description=f"add the attention grid and overlay: {ACCEPTED} (or the query parameter ?attention=)",
            json_schema_extra={"type": "boolean"},
        ),
    ) -> Classification:
        """Classify one JPEG or PNG dermoscopy image (multipart field ``image``)."""
        model = self._model
        if model is None:
            return _error(ctx, 503, self._load_error and "model failed to load" or "model is still loading; retry shortly")
        try:
            with_attention = attention_wanted(attention, ctx.request.query_params.get("attention"))
        except BadOption as exc:
            return _error(ctx, 400, str(exc))
        if with_attention and not model.model.has_attention:
            # Refuse before decoding: no forward pass can produce a map this model does not have.
            return _error(
                ctx,
                422,
                f"model {self.model_name}:{self.model_version} was trained without a Soft Attention layer, so it "
                "has no attention map; ask without attention=true",
            )
        try:
            data = await anyio.to_thread.run_sync(image.read_bytes)
            picture, prepared = await anyio.to_thread.run_sync(self._decode_and_prepare, model, data, with_attention)
        except UploadRejected as exc:
            return _error(ctx, exc.status, exc.message)
        except BudgetSpent as exc:
            return _error(ctx, 503, f"server is busy decoding other images ({exc}); retry shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        try:
            results = await self._batch_client().classify_batch([prepared])
        except bentoml.exceptions.BentoMLException as exc:
            status = int(getattr(exc.error_code, "value", 500))
            if status == 503:  # the batch queue dropped the request to keep to max_latency_ms
                return _error(ctx, 503, "server is overloaded; retry later")
            raise
        item = results[0]
        result = item if isinstance(item, BatchItem) else BatchItem.model_validate(item)
        if result.error:
            raise RuntimeError(f"batch API refused a prepared image: {result.error}")  # a bug, not bad input
        names = model.class_names
        probabilities = dict(zip(names, result.probabilities))
        top_class = max(probabilities, key=probabilities.__getitem__)
        attention_map = None
        if with_attention:
            if result.attention is None:  # has_attention was checked above: a bug, not the caller's fault
                raise RuntimeError("the Soft Attention model returned no attention grid")
            png = await anyio.to_thread.run_sync(model.overlay_png, picture, result.attention)
            attention_map = AttentionMap(grid=result.attention, overlay_png=png)
        return Classification(
            probabilities=probabilities,
            top_class=top_class,
            model=self.model_name,
            version=self.model_version,
            attention=attention_map,
        )

    def _decode_and_prepare(self, model: ServingModel, data: bytes, keep_picture: bool):  # noqa: ANN202
        """(the picture for the attention overlay or None, the prepared pixels). The decode lives only inside
        its share of the decode budget: what outlives it is at most the model's input size."""
        size = model.config.input_size  # a JPEG is decoded at the smallest DCT scale that keeps this size
        with self._decode_budget.reserve(upload_pixels(data, MAX_UPLOAD_BYTES, MAX_PIXELS, size)):
            decoded = decode_upload(data, MAX_PIXELS, size)  # the header was checked just above
            prepared = model.prepare(decoded)
            picture = model.overlay_base(decoded) if keep_picture else None
            decoded.close()
        return picture, prepared

    def _batch_client(self):  # noqa: ANN202 - BentoML's in-process async client
        """The in-process client through which /classify reaches the batching dispatcher.

        BentoML 1.4.40 recycles this client's session every 100 requests or 300 s by closing it, which
        cuts the calls still in flight on it ("Server disconnected" -> 500) whenever requests overlap a
        recycling. The session talks to this same process through an ASGI connector, so there is nothing to
        recycle: switch it off.
        """
        client = self.to_async
        sessions = getattr(client, "_session_manager", None)  # where 1.4.40 keeps the recycling limits
        if sessions is not None and getattr(sessions, "max_requests", None) != sys.maxsize:
            sessions.max_requests = sys.maxsize
            sessions.max_age = float("inf")
        return client

    def _require_model(self) -> ServingModel:
        if self._model is None:
            raise bentoml.exceptions.ServiceUnavailable("model is still loading")
        return self._model


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


SkinattnClassifier.add_asgi_middleware(
    UploadGuard, paths=[CLASSIFY_ROUTE], max_bytes=MAX_UPLOAD_BYTES + _FORM_OVERHEAD_BYTES
)
