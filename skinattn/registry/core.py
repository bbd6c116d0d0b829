"""The model registry: register immutable model versions, list them, promote one to production.

Layout under the root (a folder or ``s3://bucket/prefix``; see :mod:`skinattn.registry.object_store`)::

    objects/sha256/<digest>      file contents (weights, model.json, metrics, MODEL_CARD.md and model_card.json),
                                 stored once by content
    versions/000001.json         one record per version (ModelVersion), created once, never rewritten
    production/000001.json       the production log (Promotion); the highest number is production

Every write is a ``put_if_absent``. Two registrations racing for version N both try to create
``versions/<N>.json``; exactly one succeeds and the other takes N+1. Promotions race the same way on the
next production log number, and the loser re-reads production and decides again, so a promotion is
always judged against the champion it actually replaces. A version's record is written only after its
files are stored, so a version that can be listed can be downloaded.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from skinattn.fileio import atomic_path, sha256_file
from skinattn.model_card import CARD_MARKDOWN, card_files
from skinattn.registry.errors import ObjectNotFound, RegistryError
from skinattn.registry.metrics import Direction, compare, flatten_metrics, load_metrics
from skinattn.registry.records import (
    ModelVersion,
    Promotion,
    PromotionDecision,
    StoredFile,
    decode,
    encode,
    parse_version,
)
from skinattn.registry.object_store import ObjectStore, open_store

VERSIONS = "versions"
PRODUCTION = "production"
OBJECTS = "objects/sha256"
METRICS_FILE = "metrics.json"
# Environment variable naming the default registry root, and the fallback when it is unset.
ROOT_ENV = "SKINATTN_REGISTRY"
DEFAULT_ROOT = "registry"
# Bound on retries when other writers keep taking the number we try to create; reaching it means
# something is badly wrong (thousands of concurrent registrations), not ordinary contention.
_MAX_ATTEMPTS = 1000


def default_root() -> str:
    """``$SKINATTN_REGISTRY`` if set, else ``./registry``."""
    return os.environ.get(ROOT_ENV) or DEFAULT_ROOT


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _number_of(key: str) -> int | None:
    """``versions/000012.json`` → 12; None for anything else found under the folder."""
    name = key.rsplit("/", 1)[-1]
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "json" and stem.isdigit() else None


def _record_key(folder: str, number: int) -> str:
    # Zero-padded so that keys also sort by number in S3 listings and file browsers.
    return f"{folder}/{number:06d}.json"


class Registry:
    """A model registry rooted at a folder or an ``s3://bucket/prefix`` (see the module docstring).

    >>> registry = Registry("registry")                       # doctest: +SKIP
    >>> v = registry.register("runs/model", "runs/metrics.json", run_id="run-42")
    >>> registry.promote(v.version, metric="auc").promoted
    True
    """

    def __init__(self, root: str | os.PathLike[str] | ObjectStore | None = None) -> None:
        self.store = root if isinstance(root, ObjectStore) else open_store(root if root is not None else default_root())

    @property
    def uri(self) -> str:
        return self.store.uri

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    # ------------------------------------------------------------------------------------------ reading

    def _numbers(self, folder: str) -> list[int]:
        return sorted(n for n in map(_number_of, self.store.list(folder)) if n is not None)

    def _read_version(self, number: int) -> ModelVersion:
        key = _record_key(VERSIONS, number)
        where = f"{self.uri}/{key}"
        return ModelVersion.from_dict(decode(self.store.get(key), where), where)

    def versions(self) -> list[ModelVersion]:
        """Every registered version, oldest first, with its metrics."""
        numbers = self._numbers(VERSIONS)
        # Records are small and independent: read them concurrently (S3 latency dominates, not bytes).
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, max(1, len(numbers)))) as pool:
            return list(pool.map(self._read_version, numbers))

    def promotions(self) -> list[Promotion]:
        """The production log, oldest first; the last entry is the current production version."""
        return [self._read_promotion(n) for n in self._numbers(PRODUCTION)]

    def _read_promotion(self, sequence: int) -> Promotion:
        key = _record_key(PRODUCTION, sequence)
        where = f"{self.uri}/{key}"
        return Promotion.from_dict(decode(self.store.get(key), where), where)

    def _production_head(self) -> Promotion | None:
        numbers = self._numbers(PRODUCTION)
        return self._read_promotion(numbers[-1]) if numbers else None

    def location(self, version: ModelVersion) -> str:
        """Where ``version``'s record lives: ``s3://bucket/prefix/versions/000003.json`` or an absolute path.

        The record names every file of the version by its sha256, so this one location identifies the exact
        model; it is what pipeline runs record as their link to the registry.
        """
        return self.store.location(_record_key(VERSIONS, version.number))

    def production(self) -> ModelVersion | None:
        """The production version, or None when nothing has been promoted yet."""
        head = self._production_head()
        return None if head is None else self.get(head.version)

    def get(self, version: str | int) -> ModelVersion:
        """A version by name (``v3``, ``3``, ``3`` as int) or alias (``production``, ``latest``)."""
        if version == "production":
            found = self.production()
            if found is None:
                raise RegistryError(f"{self.uri}: no production version yet (promote one first)")
            return found
        if version == "latest":
            numbers = self._numbers(VERSIONS)
            if not numbers:
                raise RegistryError(f"{self.uri}: the registry has no versions yet")
            return self._read_version(numbers[-1])
        number = version if isinstance(version, int) else parse_version(str(version))
        try:
            return self._read_version(number)
        except ObjectNotFound as exc:
            raise RegistryError(f"{self.uri}: no version v{number}") from exc

    # ------------------------------------------------------------------------------------------ writing

    def register(
        self,
        model_dir: str | os.PathLike[str],
        metrics: Mapping[str, Any] | str | os.PathLike[str],
        *,
        params: Mapping[str, Any] | None = None,
        data_fingerprint: str | None = None,
        run_id: str | None = None,
        progress: bool = False,
    ) -> ModelVersion:
        """Store a model folder (``model.safetensors`` + ``model.json``) and its metrics as a new version, with
        its model card (``MODEL_CARD.md`` + ``model_card.json``, :mod:`skinattn.model_card`) built from both.

        ``metrics`` is a mapping or the path of a JSON file. ``params`` (training parameters) and
        ``data_fingerprint`` default to the card's ``metadata["params"]`` and
        ``metadata["data_fingerprint"]`` when the card has them. Returns the new, immutable version.
        """
        # torch comes with skinattn.models: imported here so that listing and promoting stay light.
        from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE, read_card

        model_dir = Path(model_dir)
        card = read_card(model_dir)
        weights = model_dir / str(card.get("weights", WEIGHTS_FILE))
        _check_safetensors(weights)
        if isinstance(metrics, Mapping):
            metrics_doc = dict(metrics)
            flat = flatten_metrics(metrics, "metrics")
            try:
                # NaN is allowed here: an evaluation may produce it, and the file is kept as it was given.
                metrics_bytes = json.dumps(dict(metrics), indent=2).encode("utf-8")
            except (TypeError, ValueError) as exc:
                raise RegistryError(f"metrics cannot be stored as JSON ({exc})") from exc
        else:
            metrics_doc = load_metrics(metrics)
            flat = flatten_metrics(metrics_doc, os.fspath(metrics))
            metrics_bytes = Path(metrics).read_bytes()  # stored byte for byte
        card_meta = card.get("metadata") or {}
        params = dict(params) if params is not None else dict(card_meta.get("params") or {})
        data_fingerprint = data_fingerprint or card_meta.get("data_fingerprint")

        try:
            encode(params)
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"params cannot be stored as strict JSON ({exc})") from exc

        files = {
            weights.name: self._put_file(weights, progress),
            CARD_FILE: self._put_file(model_dir / CARD_FILE, progress),
            METRICS_FILE: self._put_bytes(metrics_bytes),
        }
        # Every version carries its model card, built from the card and the metrics it is registered with (a
        # model registered without evaluation metrics gets a card that says so): skinattn.model_card.
        for name, text in card_files(card, metrics_doc, weights_sha256=files[weights.name].sha256).items():
            files[name] = self._put_bytes(text.encode("utf-8"))
        record = dict(
            registered_at=_now(),
            metrics=flat,
            params=params,
            model=dict(card.get("config") or {}),
            files=files,
            data_fingerprint=data_fingerprint,
            run_id=run_id,
            source=str(model_dir.resolve()),
        )
        for _ in range(_MAX_ATTEMPTS):
            numbers = self._numbers(VERSIONS)
            version = ModelVersion(number=(numbers[-1] + 1 if numbers else 1), **record)
            if self.store.put_if_absent(_record_key(VERSIONS, version.number), encode(version.to_dict())):
                return version
        raise RegistryError(f"{self.uri}: could not claim a version number after {_MAX_ATTEMPTS} attempts")

    def _put_bytes(self, data: bytes) -> StoredFile:
        digest = hashlib.sha256(data).hexdigest()
        key = f"{OBJECTS}/{digest}"
        # Same key, same bytes: an existing object is exactly what we would write.
        if not self.store.exists(key):
            self.store.put_if_absent(key, data)
        return StoredFile(sha256=digest, size=len(data), key=key)

    def _put_file(self, path: Path, progress: bool) -> StoredFile:
        digest = sha256_file(path)
        key = f"{OBJECTS}/{digest}"
        size = path.stat().st_size
        if not self.store.exists(key):
            with tqdm(total=size, unit="B", unit_scale=True, desc=f"upload {path.name}", disable=not progress) as bar:
                self.store.put_if_absent(key, path.read_bytes())
                bar.update(size)
        return StoredFile(sha256=digest, size=size, key=key)

    def promote(
        self,
        version: str | int,
        metric: str | None = None,
        *,
        direction: Direction | None = None,
        force: bool = False,
    ) -> PromotionDecision:
        """Make ``version`` production if it strictly beats the current production on ``metric``.

        The direction (higher or lower is better) is inferred from the metric's name unless given. A tie
        does not promote. With no production yet, the candidate is promoted (its metric must still exist).
        ``force=True`` skips the comparison (rollback, first deployment of a model without metrics); the
        log records that it was forced. Concurrent promotions are safe: see the module docstring.
        """
        if metric is None and not force:
            raise RegistryError("promote needs a metric to compare on (or force=True to skip the comparison)")
        candidate = self.get(version)
        for _ in range(_MAX_ATTEMPTS):
            head = self._production_head()
            champion = None if head is None else self.get(head.version)
            decision = self._decide(candidate, champion, metric, direction, force)
            if not decision.promoted:
                return decision
            promotion = Promotion(
                sequence=(head.sequence + 1) if head else 1,
                version=candidate.version,
                promoted_at=_now(),
                metric=metric,
                value=decision.candidate_value,
                previous=champion.version if champion else None,
                previous_value=decision.champion_value,
                forced=force,
            )
            if self.store.put_if_absent(_record_key(PRODUCTION, promotion.sequence), encode(promotion.to_dict())):
                return PromotionDecision(**(decision.to_dict() | {"promotion": promotion}))
            # Another promotion took this log entry first: judge again against the new champion.
        raise RegistryError(f"{self.uri}: could not update the production log after {_MAX_ATTEMPTS} attempts")

    @staticmethod
    def _decide(
        candidate: ModelVersion,
        champion: ModelVersion | None,
        metric: str | None,
        direction: Direction | None,
        force: bool,
    ) -> PromotionDecision:
        """Whether ``candidate`` may replace ``champion`` (the current production, if any), and why."""
        champion_name = champion.version if champion else None

        def decision(promoted: bool, reason: str, value: float | None, champion_value: float | None) -> PromotionDecision:
            return PromotionDecision(
                promoted, reason, candidate.version, champion_name, metric, value, champion_value, forced=force
            )

        if champion is not None and champion.number == candidate.number:
            return decision(False, f"{candidate.version} is already production", None, None)
        if force:
            # Recorded for the log when both sides have the metric; never compared.
            value = candidate.metrics.get(metric) if metric else None
            champion_value = champion.metrics.get(metric) if metric and champion else None
            reason = f"forced: {candidate.version} replaces {champion_name or 'nothing'} without comparison"
            return decision(True, reason, value, champion_value)
        assert metric is not None  # promote() refuses a missing metric without force
        result = compare(
            candidate.metrics,
            champion.metrics if champion else None,
            metric,
            direction,
            candidate_name=candidate.version,
            champion_name=f"production version {champion_name}",
        )
        if champion is None:
            reason = f"no production version yet: {candidate.version} becomes production"
            return decision(True, reason, result.candidate, None)
        ours = f"{candidate.version} {metric}={result.candidate:.6g}"
        theirs = f"{champion_name} {metric}={result.champion:.6g}"
        if result.better:
            reason = f"{ours} beats {theirs} ({result.direction} is better)"
        elif result.candidate == result.champion:
            reason = f"{candidate.version} ties {champion_name} on {metric}={result.candidate:.6g}; a tie does not promote"
        else:
            reason = f"{ours} does not beat {theirs} ({result.direction} is better)"
        return decision(result.better, reason, result.candidate, result.champion)

    def model_card(self, version: str | int | ModelVersion) -> str:
        """The version's ``MODEL_CARD.md``; for a version registered before cards were stored, one built now
        from its stored ``model.json`` and ``metrics.json`` (the same function registration uses)."""
        record = version if isinstance(version, ModelVersion) else self.get(version)
        if CARD_MARKDOWN in record.files:
            return self._read_stored(record, CARD_MARKDOWN).decode("utf-8")
        from skinattn.models.weights import CARD_FILE, WEIGHTS_FILE

        card = decode(self._read_stored(record, CARD_FILE), f"{record.version}/{CARD_FILE}")
        metrics = decode(self._read_stored(record, METRICS_FILE), f"{record.version}/{METRICS_FILE}")
        weights = record.files.get(str(card.get("weights", WEIGHTS_FILE)))
        return card_files(card, metrics, weights_sha256=weights.sha256 if weights else None)[CARD_MARKDOWN]

    def _read_stored(self, record: ModelVersion, name: str) -> bytes:
        stored = record.files[name]
        data = self.store.get(stored.key)
        if hashlib.sha256(data).hexdigest() != stored.sha256:
            raise RegistryError(f"{self.uri}/{stored.key}: content does not match its digest "
                                f"(corrupted object for {record.version}/{name})")  # fmt: skip
        return data

    # ----------------------------------------------------------------------------------------- download

    def fetch(self, version: str | int | ModelVersion, cache_root: str | os.PathLike[str] | None = None) -> Path:
        """A local folder holding ``version``'s files, from a cache kept across runs.

        Versions are immutable, so a cached copy whose files all match their recorded digests is reused
        as it is; anything missing or different is downloaded again (each file written to a temporary name
        and renamed). Nothing is left behind per run, which a temporary folder per run would be whenever
        the process is killed. The cache lives in ``cache_root``, else ``$SKINATTN_CACHE_DIR``, else
        ``~/.cache/skinattn``, under ``models/<registry digest>/<version>``.
        """
        record = version if isinstance(version, ModelVersion) else self.get(version)
        root = Path(cache_root or os.environ.get("SKINATTN_CACHE_DIR") or Path.home() / ".cache" / "skinattn")
        folder = root / "models" / hashlib.sha256(self.uri.encode()).hexdigest()[:16] / record.version
        if all(_file_digest(folder / name) == stored.sha256 for name, stored in record.files.items()):
            return folder
        return self.download(record, folder)

    def download(self, version: str | int | ModelVersion, dest: str | os.PathLike[str]) -> Path:
        """Write a version's files (weights, card, metrics.json) into ``dest``, checking every digest.

        Returns ``dest``, a folder that :func:`skinattn.models.load_model` reads.
        """
        record = version if isinstance(version, ModelVersion) else self.get(version)
        out = Path(dest)
        out.mkdir(parents=True, exist_ok=True)
        for name in record.files:
            data = self._read_stored(record, name)
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(data)
        return out


def _check_safetensors(path: Path) -> None:
    """Refuse a weights file that is missing or whose safetensors header cannot be read."""
    if not path.is_file():
        raise RegistryError(f"{path}: weights file missing")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            if not list(handle.keys()):
                raise RegistryError(f"{path}: the weights file holds no tensors")
    except (SafetensorError, OSError) as exc:
        raise RegistryError(f"{path}: not a readable safetensors file ({exc})") from exc


def fingerprint_manifest(manifest: str | os.PathLike[str]) -> str:
    """A data fingerprint for a manifest folder (or its CSV): ``sha256:`` of ``manifest.csv``.

    The CSV lists every image, its label and split, so two runs with the same fingerprint trained and
    were evaluated on the same rows.
    """
    path = Path(manifest)
    csv_path = path / "manifest.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise RegistryError(f"{csv_path}: no manifest.csv to fingerprint")
    return f"sha256:{sha256_file(csv_path)}"


def dumps_version(version: ModelVersion) -> str:
    """A version as indented JSON (what ``skinattn registry show`` prints)."""
    return json.dumps(version.to_dict(), indent=2)


def _file_digest(path: Path) -> str | None:
    """sha256 of the file at ``path``, or None when there is none."""
    try:
        return sha256_file(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
