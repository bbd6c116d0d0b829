"""The registry's records, as typed dataclasses with their JSON form.

A :class:`ModelVersion` is written once, when the version is registered, and never changes. A
:class:`Promotion` is one entry of the append-only production log; the newest entry names the
production version.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from skinattn.registry.errors import RegistryError

VERSION_FORMAT = "skinattn-registry-version"
PROMOTION_FORMAT = "skinattn-registry-promotion"
RECORD_VERSION = 1


def version_name(number: int) -> str:
    """The user-facing name of version ``number``: ``v1``, ``v2``, ..."""
    return f"v{number}"


def parse_version(text: str) -> int:
    """The number of a version written as ``v3``, ``V3`` or ``3``."""
    body = text[1:] if text[:1] in {"v", "V"} else text
    if not body.isdigit() or int(body) < 1:
        raise RegistryError(f"{text!r} is not a version (expected v1, v2, ..., 'production' or 'latest')")
    return int(body)


@dataclasses.dataclass(frozen=True)
class StoredFile:
    """A file of a version, stored once by content under ``key`` (``objects/sha256/<digest>``)."""

    sha256: str
    size: int
    key: str


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    """One registered model: where its files are, how it scored, what produced it.

    ``metrics`` holds the flattened numbers used for comparisons (see :mod:`skinattn.registry.metrics`);
    the complete metrics file is among ``files`` as ``metrics.json``. ``model`` is the card's config
    (arch, class names, input size...), copied here so that listing needs no extra reads.
    """

    number: int
    registered_at: str
    metrics: dict[str, float | None]
    params: dict[str, Any]
    model: dict[str, Any]
    files: dict[str, StoredFile]
    data_fingerprint: str | None = None
    run_id: str | None = None
    source: str | None = None

    @property
    def version(self) -> str:
        return version_name(self.number)

    @property
    def class_names(self) -> list[str]:
        return list(self.model.get("class_names", []))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"format": VERSION_FORMAT, "record_version": RECORD_VERSION, "version": self.version} | data

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "version record") -> ModelVersion:
        _check_format(data, VERSION_FORMAT, where)
        try:
            files = {name: StoredFile(**item) for name, item in data["files"].items()}
            return cls(
                number=int(data["number"]),
                registered_at=str(data["registered_at"]),
                metrics=dict(data["metrics"]),
                params=dict(data.get("params") or {}),
                model=dict(data.get("model") or {}),
                files=files,
                data_fingerprint=data.get("data_fingerprint"),
                run_id=data.get("run_id"),
                source=data.get("source"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryError(f"{where}: malformed version record ({exc!r})") from exc


@dataclasses.dataclass(frozen=True)
class Promotion:
    """An entry of the production log: from ``promoted_at`` on, ``version`` is production.

    ``previous`` is the production version it replaced (None for the first), ``metric`` / ``value`` /
    ``previous_value`` the comparison that allowed it, ``forced`` whether the comparison was skipped.
    """

    sequence: int
    version: str
    promoted_at: str
    metric: str | None
    value: float | None
    previous: str | None
    previous_value: float | None
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROMOTION_FORMAT, "record_version": RECORD_VERSION} | dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "promotion record") -> Promotion:
        _check_format(data, PROMOTION_FORMAT, where)
        names = {field.name for field in dataclasses.fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in names})
        except TypeError as exc:
            raise RegistryError(f"{where}: malformed promotion record ({exc})") from exc


@dataclasses.dataclass(frozen=True)
class PromotionDecision:
    """What :meth:`Registry.promote` did and why; ``promotion`` is the log entry written, if any."""

    promoted: bool
    reason: str
    candidate: str
    champion: str | None
    metric: str | None
    candidate_value: float | None
    champion_value: float | None
    forced: bool = False
    promotion: Promotion | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, allow_nan=False) + "\n").encode("utf-8")


def decode(data: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise RegistryError(f"{where}: expected a JSON object")
    return value


def _check_format(data: dict[str, Any], expected: str, where: str) -> None:
    if data.get("format") != expected:
        raise RegistryError(f"{where}: not a {expected} record (format is {data.get('format')!r})")
    if int(data.get("record_version", 0)) > RECORD_VERSION:
        raise RegistryError(f"{where}: record version {data['record_version']} is newer than this skinattn ({RECORD_VERSION})")
