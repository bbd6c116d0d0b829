"""Builders of synthetic archives for the scoring tests (no fixtures: conftest.py has those).

Archives follow the ``isic image download`` layout: ``<isic_id>.jpg`` (real JPEGs, each different, so
predictions differ between images), ``metadata.csv`` with new-schema diagnosis columns,
``attribution.txt`` and ``licenses/``.
"""

from __future__ import annotations

import os
import sys
import uuid
import zipfile
from pathlib import Path

import boto3
from _isic_download import DIAGNOSES, isic_id, jpeg_bytes, make_archive  # noqa: F401  (re-exported)

REPO = Path(__file__).resolve().parents[2]
# The interpreter running the tests: the project's .venv under `make test`.
PYTHON = sys.executable

def zip_folder(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    """Pack ``folder`` into ``archive`` (members relative to the folder), plus ``extra`` raw members."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return archive


def upload_folder(folder: Path, endpoint: str, prefix: str = "download") -> str:
    """Upload ``folder`` to a fresh bucket; return the ``s3://bucket/prefix`` URI."""
    bucket = f"scoring-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env
