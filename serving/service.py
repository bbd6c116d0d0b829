"""The skinattn HTTP endpoint: two BentoML 1.4 services around one registered model.

``SkinattnClassifier`` (service ``skinattn``, the public API server) takes the uploads: it checks, decodes and
resizes each image once, in a worker thread, and sends its uint8 pixels as a numpy array to
``SkinattnModel`` (service ``skinattn-model``), on which it depends (``bentoml.depends``). That service holds
the weights; its one batchable API, ``forward``, takes ``(N, 3, S, S)`` arrays, so BentoML's adaptive
batching concatenates concurrent requests along axis 0 into one forward pass and splits the result rows
back to their callers. ``bentoml serve`` runs the model service as its own process on a Unix socket inside
the container: it has no public route, and its pickle transport is refused by the public server.

Public routes (all on ``SkinattnClassifier``):
    POST /classify         multipart field ``image`` (one JPEG or PNG); optional field or query parameter
                           ``attention=true`` adds the attention grid and a base64 PNG overlay.
    GET  /model-card       the model card (Markdown; ``?format=json`` for its fields), see serving/model_card.py.
    GET  /livez /readyz /metrics   BentoML's probes (/readyz is 503 until the model is loaded) and Prometheus.

With ``SKINATTN_API_TOKEN`` set, every route but the probes and /metrics needs ``Authorization: Bearer``
(serving/auth.py). Settings come from environment variables, read when the module is imported (see
``docs/serving.md``): ``SKINATTN_MODEL_TAG`` (BentoML model, default ``skinattn:latest``),
``SKINATTN_MAX_UPLOAD_BYTES``, ``SKINATTN_MAX_PIXELS``, ``SKINATTN_DECODE_BUDGET_PIXELS``,
``SKINATTN_MAX_BATCH_SIZE``, ``SKINATTN_MAX_LATENCY_MS``, ``SKINATTN_WARMUP_PASSES``, ``SKINATTN_DEVICE``,
``SKINATTN_API_WORKERS``, ``SKINATTN_MODEL_INFLIGHT``, ``SKINATTN_API_TOKEN``.
"""

import asyncio
import logging
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import bentoml
import numpy as np
import pydantic
from starlette.responses import JSONResponse

from serving.auth import BearerTokenAuth, configured_token
from serving.decode_budget import BudgetSpent, DecodeBudget
from serving.guard import UploadGuard
from serving.model_card import ModelCardRoute
from serving.options import ACCEPTED, BadOption, attention_wanted
from serving.runtime import Preprocessor, ServingModel
from serving.upload import UploadRejected, decode_upload, upload_pixels

logger = logging.getLogger("skinattn.serving")
# BentoML's server logging passes only WARNING and up from loggers other than its own: without this the
# start-up lines (model loaded on which device, with how many threads; token required) never reach the log.
logger.setLevel(logging.INFO)


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


def _device() -> str:
    if os.environ.get("SKINATTN_DEVICE"):
        return os.environ["SKINATTN_DEVICE"]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_max_batch_size() -> int:
    """8 images per forward pass on a CPU, 32 on a GPU. On a CPU a pass over 8 images is already as fast per
    image as it gets and larger ones are slower per image (their activations outgrow the caches: 20 % slower
    at 32), so batches of 8 serve more images per second (BENCHMARKS.md, "Endpoint throughput")."""
    return 8 if _device() == "cpu" else 32


MODEL_TAG = os.environ.get("SKINATTN_MODEL_TAG") or "skinattn:latest"
MAX_UPLOAD_BYTES = _env_int("SKINATTN_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
MAX_PIXELS = _env_int("SKINATTN_MAX_PIXELS", 40_000_000)
MAX_BATCH_SIZE = max(2, _env_int("SKINATTN_MAX_BATCH_SIZE", _default_max_batch_size()))  # BentoML requires more than 1
MAX_LATENCY_MS = _env_int("SKINATTN_MAX_LATENCY_MS", 10_000)
# Requests let through to the model service at once (0 = no limit), shared evenly between the API workers;
# the rest wait here, for at most SKINATTN_MAX_LATENCY_MS. BentoML's batcher holds a lone request back for
# about the mean queue wait of its recent batches, so a queue as long as the load makes a single client wait
# that long after a burst. Two max batches (one in the pass, one queued) keep the model busy: on 2 vCPUs at 32
# clients, 49 images/s instead of 51 (within the rounds' spread), p99 790 instead of 885 ms, and a lone
# request after the burst took 150 ms instead of 420 (BENCHMARKS.md, "Endpoint throughput").
MODEL_INFLIGHT = _env_int("SKINATTN_MODEL_INFLIGHT", 2 * MAX_BATCH_SIZE)
WARMUP_PASSES = _env_int("SKINATTN_WARMUP_PASSES", 1)
# Pixels being decoded at once over all requests (serving/decode_budget.py): two images of the largest
# allowed size, about 600 MB of decoding memory, by default.
DECODE_BUDGET_PIXELS = _env_int("SKINATTN_DECODE_BUDGET_PIXELS", 2 * MAX_PIXELS)
# Worker processes of the API service. Each decodes its own requests, so each gets an equal share of the
# decode budget (at least one image of MAX_PIXELS): the bound on decoding memory stays the same. Two served
# about 12 % more images/s than one at 32 clients on 2 vCPUs, for about 0.5 GB more memory (BENCHMARKS.md,
# "Endpoint throughput").
API_WORKERS = max(1, _env_int("SKINATTN_API_WORKERS", 1))
WORKER_DECODE_BUDGET_PIXELS = max(MAX_PIXELS, DECODE_BUDGET_PIXELS // API_WORKERS)
API_TOKEN = configured_token(os.environ)
# Seconds a client is asked to wait (Retry-After) when the decode budget is spent or the queue is full.
RETRY_AFTER_S = 1
# Room for the multipart framing (boundaries, part headers, the attention field) around the file itself.
_FORM_OVERHEAD_BYTES = 64 * 1024
CLASSIFY_ROUTE = "/classify"
MODEL_SERVICE = "skinattn-model"
# BentoML's client for a dependency closes its connection pool every `max_requests` calls or `max_age`
# seconds (defaults 100 and 300 s) and so cuts the calls still in flight on it (bentoml/BentoML#5540):
# under steady load that is a 500 every few hundred requests. The pool talks to a Unix socket in the same
# container: never recycle it. `runner_connection` is the service setting BentoML reads for this.
_NEVER = {"max_requests": 2**62, "max_age": 1e12}


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


class ModelHealth(pydantic.BaseModel):
    """The model service's state, for the API service's probes and its first requests."""

    ready: bool
    error: str | None = None


def _error(ctx: bentoml.Context, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # BentoML copies ctx.response.status_code onto the response of an API that takes ctx: set both.
    ctx.response.status_code = status
    for name, value in (headers or {}).items():
        ctx.response.headers[name] = value
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@bentoml.service(
    name=MODEL_SERVICE,
    traffic={"timeout": 60},
    workers=1,
    # One forward pass at a time: `forward` is sync and runs in BentoML's thread pool of this size;
    # concurrency comes from batching, not from threads fighting over the same cores.
    threads=1,
    runner_connection=_NEVER,
)
class SkinattnModel:
    """The weights and the batched forward pass; reached only through SkinattnClassifier."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        self.model: ServingModel | None = None
        self.load_error: str | None = None
        # Load in the background: the process answers at once, and /readyz (of both services) says 503
        # until the weights are loaded and warmed up (the Kubernetes startup probe waits on /readyz).
        threading.Thread(target=self.load, name="skinattn-model-load", daemon=True).start()

    def load(self) -> None:
        import torch

        try:
            stored = self.bento_model
            device = _device()
            model = ServingModel(stored.path, device=device)
            model.warm_up(MAX_BATCH_SIZE, WARMUP_PASSES)
            self.model = model
            # benchmarks/bench_endpoint.py reads the thread count from this line (its raw-forward yardstick
            # runs with the same number).
            logger.info("loaded %s (%s, input %d px) on %s, %d torch threads, max batch %d", stored.tag,
                        model.config.arch, model.config.input_size, device, torch.get_num_threads(), MAX_BATCH_SIZE)  # fmt: skip
            # Which temperature every probability this service returns is computed with (the card's; 1 if none).
            logger.info("probabilities: %s", model.describe_calibration())
        except Exception as exc:  # noqa: BLE001 - any failure must surface as a dead /livez, not a hang
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.exception("could not load model %s", MODEL_TAG)

    def __is_ready__(self) -> bool:
        return self.model is not None

    def __is_alive__(self) -> bool:
        return self.load_error is None

    @bentoml.api
    async def health(self) -> ModelHealth:
        """Loaded, still loading, or failed (async: answered at once, never queued behind a forward pass)."""
        return ModelHealth(ready=self.model is not None, error=self.load_error)

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def forward(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, 3, S, S)`` uint8 pixels of images already resized to the model's input size, in; one record
        (``probabilities``, ``attention``) per image, out. BentoML merges concurrent calls into one batch."""
        if self.model is None:
            raise bentoml.exceptions.ServiceUnavailable("model is still loading")
        return self.model.classify(pixels)


@bentoml.service(name="skinattn", traffic={"timeout": 60}, workers=API_WORKERS)
class SkinattnClassifier:
    """Soft-Attention CNN classifier of dermoscopy images."""

    bento_model = bentoml.models.BentoModel(MODEL_TAG)
    model = bentoml.depends(SkinattnModel)

    def __init__(self) -> None:
        # This process only resizes and copies small tensors, one request per thread: torch's intra-op thread
        # pool would only spin on the cores the model service's forward pass needs.
        import torch

        torch.set_num_threads(1)
        stored = self.bento_model
        # The card only (class names, input size, preprocessing): the weights live in SkinattnModel.
        self.preprocessor = Preprocessor(stored.path)
        self.model_name = stored.tag.name
        self.model_version = str((stored.info.metadata or {}).get("version") or stored.tag.version)
        self.decode_budget = DecodeBudget(WORKER_DECODE_BUDGET_PIXELS, MAX_PIXELS)
        slots = -(-MODEL_INFLIGHT // API_WORKERS) if MODEL_INFLIGHT > 0 else 0
        self.model_slots = asyncio.Semaphore(slots) if slots else None
        self.model_ready = False
        if API_TOKEN is None:
            logger.warning("SKINATTN_API_TOKEN is not set: /classify is open to anyone who can reach this "
                           "server (set it, e.g. from the Secret skinattn-serving-auth, to require a bearer token)")  # fmt: skip
        else:
            logger.info("bearer token required on every route but /livez, /readyz, /healthz and /metrics")

    async def model_health(self) -> ModelHealth:
        """The model service's state; not ready while it cannot be reached (it may be starting)."""
        try:
            health = await self.model.to_async.health()
        except Exception as exc:  # noqa: BLE001 - unreachable now (starting, restarting): not ready yet
            logger.debug("model service not reachable: %s: %s", type(exc).__name__, exc)
            return ModelHealth(ready=False)
        return health if isinstance(health, ModelHealth) else ModelHealth.model_validate(health)

    async def __is_ready__(self) -> bool:
        if not self.model_ready:  # once loaded, the model stays loaded: ask until then
            self.model_ready = (await self.model_health()).ready
        return self.model_ready

    async def __is_alive__(self) -> bool:
        # A model that failed to load will never become ready: report dead so that the orchestrator restarts.
        return self.model_ready or (await self.model_health()).error is None

    async def model_forward(self, pixels: np.ndarray) -> np.ndarray:
        """The model service's batched forward pass, entered by at most MODEL_INFLIGHT requests at once."""
        if self.model_slots is None:
            return await self.model.to_async.forward(pixels)
        await asyncio.wait_for(self.model_slots.acquire(), MAX_LATENCY_MS / 1000)
        try:
            return await self.model.to_async.forward(pixels)
        finally:
            self.model_slots.release()

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
        if not await self.__is_ready__():
            failed = (await self.model_health()).error is not None
            return _error(ctx, 503, "model failed to load" if failed else "model is still loading; retry shortly",
                          headers=None if failed else {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        prep = self.preprocessor
        try:
            with_attention = attention_wanted(attention, ctx.request.query_params.get("attention"))
        except BadOption as exc:
            return _error(ctx, 400, str(exc))
        if with_attention and not prep.has_attention:
            # Refuse before decoding: no forward pass can produce a map this model does not have.
            return _error(
                ctx,
                422,
                f"model {self.model_name}:{self.model_version} was trained without a Soft Attention layer, so it "
                "has no attention map; ask without attention=true",
            )
        try:
            data = await anyio.to_thread.run_sync(image.read_bytes)
            picture, pixels = await anyio.to_thread.run_sync(self.decode_and_prepare, data, with_attention)
        except UploadRejected as exc:
            return _error(ctx, exc.status, exc.message)
        except BudgetSpent as exc:
            return _error(ctx, 503, f"server is busy decoding other images ({exc}); retry shortly",
                          headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        try:
            rows = await self.model_forward(pixels)
        except TimeoutError:
            return _error(ctx, 503, "server is overloaded; retry later", headers={"Retry-After": str(RETRY_AFTER_S)})
        except bentoml.exceptions.BentoMLException as exc:
            status = int(getattr(exc.error_code, "value", 500))
            if status == 503:  # the batch queue dropped the request to keep to max_latency_ms
                return _error(ctx, 503, "server is overloaded; retry later", headers={"Retry-After": str(RETRY_AFTER_S)})
            raise
        row = rows[0]
        probabilities = dict(zip(prep.class_names, (float(p) for p in row["probabilities"])))
        top_class = max(probabilities, key=probabilities.__getitem__)
        attention_map = None
        if with_attention:
            grid = np.asarray(row["attention"])
            png = await anyio.to_thread.run_sync(prep.overlay_png, picture, grid)
            attention_map = AttentionMap(grid=grid.tolist(), overlay_png=png)
        return Classification(
            probabilities=probabilities,
            top_class=top_class,
            model=self.model_name,
            version=self.model_version,
            attention=attention_map,
        )

    def decode_and_prepare(self, data: bytes, keep_picture: bool):  # noqa: ANN201
        """(the picture for the attention overlay or None, the (1, 3, S, S) uint8 pixels). The decode lives
        only inside its share of the decode budget: what outlives it is at most the model's input size."""
        prep = self.preprocessor
        size = prep.config.input_size  # a JPEG is decoded at the smallest DCT scale that keeps this size
        with self.decode_budget.reserve(upload_pixels(data, MAX_UPLOAD_BYTES, MAX_PIXELS, size)):
            decoded = decode_upload(data, MAX_PIXELS, size)  # the header was checked just above
            pixels = prep.prepare(decoded)
            picture = prep.overlay_base(decoded) if keep_picture else None
            decoded.close()
        return picture, pixels


# The token is checked first (outermost), so that an anonymous client cannot make the server buffer a body.
if API_TOKEN is not None:
    SkinattnClassifier.add_asgi_middleware(BearerTokenAuth, token=API_TOKEN)
SkinattnClassifier.add_asgi_middleware(
    UploadGuard, paths=[CLASSIFY_ROUTE], max_bytes=MAX_UPLOAD_BYTES + _FORM_OVERHEAD_BYTES
)
# GET /model-card: inside the token check (read-only, but it describes the model like /classify uses it; only
# the probes and /metrics are open). The folder is that of the served BentoML model, resolved on first request.
SkinattnClassifier.add_asgi_middleware(ModelCardRoute, model_folder=lambda: Path(bentoml.models.get(MODEL_TAG).path))
