"""The registry's object store: four operations on immutable objects, for a local folder and for S3.

The registry never overwrites an object. Everything it needs, including the switch of the production
pointer, is built on one primitive that both backends provide atomically:

``put_if_absent(key, data)``
    Create ``key`` holding ``data`` if and only if no object has that key, and say whether it did.
    Locally the bytes go to a temporary file first and are *hard-linked* to the final name: ``link(2)``
    fails if the name exists, and the object is never visible half-written (``open(O_EXCL)`` would give
    exclusivity but expose a partially written file to concurrent readers). On S3 it is
    ``PutObject`` with ``If-None-Match: *``, which the server refuses with ``412 PreconditionFailed`` when
    the key exists (AWS S3 since 2024, MinIO, and moto).

plus ``get``, ``exists`` and ``list``. Keys are relative, ``/``-separated paths such as
``versions/000003.json``; the store maps them under its root (a folder, or ``s3://bucket/prefix``).
"""

from __future__ import annotations

import abc
import os
import tempfile
import time
from pathlib import Path, PurePosixPath

from skinattn.errors import DataError
from skinattn.registry.errors import ObjectNotFound, RegistryError
from skinattn.storage import s3
from skinattn.storage.entries import S3_SCHEME, parse_s3_uri

FILE_SCHEME = "file://"
# AWS answers 409 ConditionalRequestConflict when two conditional writes to one key race; the loser
# should simply try again (and will then usually get 412 because the winner's object exists).
_CONFLICT_RETRIES = 5


def check_key(key: str) -> str:
    """Refuse keys that could escape the store's root or that no backend can hold the same way."""
    path = PurePosixPath(key)
    if not key or key.startswith("/") or "\\" in key or any(part in {"", ".", ".."} for part in key.split("/")):
        raise RegistryError(f"invalid registry key {key!r}: keys are relative '/'-separated paths without '..'")
    return path.as_posix()


class ObjectStore(abc.ABC):
    """Immutable objects under a root; see the module docstring for the guarantees."""

    #: Where the objects live, as the user wrote it (a folder path or ``s3://bucket/prefix``).
    uri: str

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create ``key`` with ``data`` atomically; return False (writing nothing) if it already exists."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes of ``key``; raise :class:`ObjectNotFound` if there is no such object."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object named ``key`` exists."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Every key under the folder ``prefix`` (``'versions'`` lists ``versions/...``), sorted."""

    def location(self, key: str) -> str:
        """Where the object ``key`` lives, as other tools name it (``s3://bucket/prefix/key``, an absolute path)."""
        return f"{self.uri}/{check_key(key)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class LocalStore(ObjectStore):
    """Objects as files under a local folder (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def location(self, key: str) -> str:
        # Absolute: a location recorded by one process (a pipeline step) is read from another working directory.
        return str(self._path(key).absolute())

    def put_if_absent(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        except OSError as exc:
            raise RegistryError(f"{final}: cannot write to the registry ({exc.strerror or exc})") from exc
        try:
            # Objects are immutable: make them read-only for everyone (mkstemp's 0600 would also hide
            # them from the other users of a shared registry folder).
            os.fchmod(fd, 0o444)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
            try:
                os.link(tmp_name, final)
            except FileExistsError:
                return False
            except OSError as exc:
                raise RegistryError(
                    f"{final}: cannot create the object ({exc.strerror or exc}); the registry folder must be on "
                    "a filesystem with hard links (any local POSIX filesystem, NFS)"
                ) from exc
            return True
        finally:
            Path(tmp_name).unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{path}: no such object in the registry") from exc
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read ({exc.strerror or exc})") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            # Dot-files are temporary files of writes in progress (see put_if_absent), never objects.
            if path.is_file() and not path.name.startswith("."):
                keys.append(path.relative_to(self.root).as_posix())
        return sorted(keys)


class S3Store(ObjectStore):
    """Objects in an S3 (or S3-compatible: MinIO, moto) bucket under a key prefix.

    The client is the project's one S3 client (:func:`skinattn.storage.s3.client`), so endpoint, region and
    credentials are read from the standard ``AWS_*`` environment variables (``AWS_ENDPOINT_URL`` for MinIO).
    The bucket must exist: creating buckets is an infrastructure decision, not the registry's.
    """

    def __init__(self, uri: str) -> None:
        try:
            self.bucket, prefix = parse_s3_uri(uri)
        except DataError as exc:
            raise RegistryError(str(exc)) from exc
        self.prefix = prefix.strip("/")
        self.uri = f"{S3_SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, key: str, exc: BaseException) -> RegistryError:
        where = f"{S3_SCHEME}{self.bucket}/{self._key(key) if key else self.prefix}"
        if s3.error_code(exc) == "NoSuchBucket":
            return RegistryError(f"{where}: bucket {self.bucket!r} does not exist (create it first)")
        return RegistryError(f"{where}: S3 request failed ({s3.error_reason(exc)})")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        for attempt in range(_CONFLICT_RETRIES):
            try:
                s3.client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
                return True
            except s3.failures() as exc:
                code = s3.error_code(exc)
                if code == "PreconditionFailed":
                    return False
                if code == "ConditionalRequestConflict" and attempt + 1 < _CONFLICT_RETRIES:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise self._error(key, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def get(self, key: str) -> bytes:
        try:
            return s3.client().get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except s3.failures() as exc:
            if s3.error_code(exc) in {"NoSuchKey", "404"}:
                raise ObjectNotFound(f"{S3_SCHEME}{self.bucket}/{self._key(key)}: no such object in the registry") from exc
            raise self._error(key, exc) from exc

    def exists(self, key: str) -> bool:
        try:
            s3.client().head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except s3.failures() as exc:
            if s3.error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise self._error(key, exc) from exc

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            for page in s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except s3.failures() as exc:
            raise self._error(prefix, exc) from exc
        return sorted(keys)


def open_store(root: str | os.PathLike[str]) -> ObjectStore:
    """The store for a registry root: ``s3://bucket/prefix``, ``file:///path`` or a plain folder path."""
    text = os.fspath(root)
    if text.startswith(S3_SCHEME):
        return S3Store(text)
    if text.startswith(FILE_SCHEME):
        return LocalStore(text[len(FILE_SCHEME):])
    if "://" in text:
        raise RegistryError(f"{text}: unsupported registry root (use a folder path, file:///path or s3://bucket/prefix)")
    return LocalStore(text)
