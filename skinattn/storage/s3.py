"""S3 and S3-compatible servers (MinIO, moto): the one client of the project, listing, budgeted reads, uploads.

Endpoint, region and credentials come from the standard AWS environment variables, including
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` for MinIO; the data readers, the scorer, the registry and the
pipeline steps all take their client from :func:`client`.

Why boto3 and not s3fs (fsspec): boto3 is already the project's S3 dependency and its clients are
thread-safe; s3fs would add an asyncio stack (aiobotocore + aiohttp) whose aiobotocore pins botocore to a
narrow window (aiobotocore 3.10 needs botocore <1.43.118 while boto3 1.44 is current), so adding it would
hold every boto3 user of the image back. The four operations needed (list, get with a size check, put,
head) are a few lines each on boto3.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

from skinattn.errors import DataError
from skinattn.storage.entries import S3_SCHEME, Entry, is_clutter, parse_s3_uri
from skinattn.storage.limits import BoundedReader, check_size

_ENV = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
)
_lock = threading.Lock()
_clients: dict[tuple[str | None, ...], object] = {}


def client():  # noqa: ANN201 - botocore's client class is generated at run time
    """A boto3 S3 client configured from the environment, cached per environment (clients are thread-safe).

    With a custom endpoint, path-style addressing is used because such servers rarely have per-bucket DNS
    names.
    """
    key = tuple(os.environ.get(name) for name in _ENV)
    with _lock:
        cached = _clients.get(key)
        if cached is None:
            cached = _new_client(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
            _clients[key] = cached
        return cached


def _new_client(**config: object):  # noqa: ANN202 - see client()
    import boto3  # imported here: only S3 users pay for it
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    settings = Config(s3={"addressing_style": "path" if endpoint else "auto"}, **config)
    return boto3.session.Session().client("s3", endpoint_url=endpoint or None, config=settings)


def configured() -> bool:
    """Whether this environment names an S3 endpoint or credentials (variables, or a shared credentials
    file): a pre-flight check from a workstation only asks S3 when someone set it up to be asked."""
    if any(os.environ.get(name) for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE")):
        return True
    credentials = os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    return os.path.isfile(credentials)


def probe(uri: str, *, timeout_s: float) -> bool:
    """Whether any object lies under the prefix ``uri``: ONE list request for at most one key, with a fresh
    client whose timeouts are ``timeout_s`` and which does not retry, so that a pre-flight check answers in
    seconds. A missing bucket, refused credentials or an unreachable endpoint raise DataError."""
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    try:
        probe_client = _new_client(connect_timeout=timeout_s, read_timeout=timeout_s,
                                   retries={"max_attempts": 1, "mode": "standard"})  # fmt: skip
        response = probe_client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except failures() as exc:
        raise request_error(uri, exc) from exc
    return int(response.get("KeyCount", 0)) > 0


def reset() -> None:
    """Forget the cached clients (run in forked children: they must not share the parent's pooled sockets,
    and a lock held by another parent thread at fork time would never be released in the child)."""
    global _lock
    _lock = threading.Lock()
    _clients.clear()


def failures() -> tuple[type[BaseException], ...]:
    """The exception types a boto3 call raises for a failed request."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError, S3UploadFailedError


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a failed request (``NoSuchKey``, ``PreconditionFailed``...), None if it has none."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code")


def error_reason(exc: BaseException) -> str:
    """``Code: message`` of a failed request, or the exception's text when the server gave no code."""
    code = error_code(exc)
    if not code:
        return str(exc)
    return f"{code}: {exc.response.get('Error', {}).get('Message', '')}".rstrip(": ")  # type: ignore[attr-defined]


def request_error(uri: str, exc: BaseException) -> DataError:
    return DataError(f"{uri}: S3 request failed ({error_reason(exc)})")


def list_entries(uri: str, *, strict: bool) -> Iterator[Entry]:
    """The objects under the prefix ``uri`` as entries. Archives are not opened inside S3: ``strict`` refuses
    a prefix holding one, otherwise it is an ordinary non-image entry."""
    bucket, prefix = parse_s3_uri(uri)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    try:
        for page in client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                relpath = obj["Key"][len(prefix):]
                if not relpath or relpath.endswith("/") or is_clutter(relpath):
                    continue
                if strict and relpath.lower().endswith(".zip"):
                    raise DataError(
                        f"{S3_SCHEME}{bucket}/{obj['Key']}: archives inside an S3 prefix are not read "
                        "(upload the extracted files instead)"
                    )
                yield Entry(relpath, f"{S3_SCHEME}{bucket}/{obj['Key']}", int(obj["Size"]))
    except failures() as exc:
        raise request_error(uri, exc) from exc


def open_object(uri: str, max_bytes: int) -> BoundedReader:
    """A bounded stream over one object, its ContentLength checked before the body is read."""
    bucket, key = parse_s3_uri(uri)
    try:
        response = client().get_object(Bucket=bucket, Key=key)
    except failures() as exc:
        raise request_error(uri, exc) from exc
    body = response["Body"]
    try:
        check_size(uri, int(response.get("ContentLength") or 0), max_bytes)
    except DataError:
        body.close()
        raise
    return BoundedReader(body, uri, max_bytes, failures=failures() + (OSError,))


def upload_file(path: str, uri: str) -> None:
    """Copy the local file ``path`` to the object ``uri`` (multipart for large files), replacing it."""
    bucket, key = parse_s3_uri(uri)
    try:
        client().upload_file(path, bucket, key)
    except failures() as exc:
        raise DataError(f"cannot copy {path} to {uri}: {error_reason(exc)}") from exc
