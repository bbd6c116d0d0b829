"""Pretrained backbone weights from the user's own storage: a local file or an ``s3://`` object.

Clusters that train often have no internet, so timm's hub download (``pretrained: true``) is not an option
there. Instead the ImageNet weights are fetched once on a machine with internet, copied into the bucket
(docs/training.md, "Pretrained weights from your bucket"), and named by URI::

    model:
      pretrained: s3://models/pretrained/resnet50.a1_in1k.safetensors

An ``s3://`` object is read through the storage layer (:func:`skinattn.storage.open_stream`, bounded by
``$SKINATTN_MAX_FETCH_BYTES``) into a local cache, content-addressed by its sha256
(``<cache>/pretrained/sha256/<digest><suffix>``) and written under a temporary name first, so a killed
download never leaves a half file that a later run would load. The cache is ``$SKINATTN_CACHE_DIR`` or
``~/.cache/skinattn``, as for registry versions.

``.safetensors`` is preferred (no code runs when it is read); ``.pth``/``.pt``/``.bin`` are accepted only
through ``torch.load(weights_only=True)`` (:func:`skinattn.models.factory.load_backbone_weights`). What was
loaded is recorded as ``{source, sha256, format}`` in the model card's ``pretrained`` section, so a model can
be traced to the exact bytes it started from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from skinattn.errors import DataError, ModelError
from skinattn.fileio import atomic_path, sha256_file
from skinattn.storage import S3_SCHEME, max_fetch_bytes, open_stream

PRETRAINED_KEY = "pretrained"  # top-level section of model.json
FORMATS: dict[str, str] = {".safetensors": "safetensors", ".pth": "torch", ".pt": "torch", ".bin": "torch"}
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """A weights file ready to load (``path``) and where it came from."""

    source: str
    path: Path
    sha256: str
    format: str

    def to_card(self) -> dict[str, Any]:
        """The card's ``pretrained`` section: the source as given, the file's sha256 and its format."""
        return {"source": self.source, "sha256": self.sha256, "format": self.format}


def weights_format(source: str) -> str:
    """``safetensors`` or ``torch`` from the file name; anything else is refused, naming the accepted kinds."""
    suffix = Path(source.rsplit("/", 1)[-1]).suffix.lower()
    if suffix not in FORMATS:
        raise ModelError(
            f"{source}: pretrained weights must be a .safetensors file (preferred) or a .pth/.pt/.bin state dict "
            f"read with weights_only=True; got {suffix or 'no suffix'}"
        )
    return FORMATS[suffix]


def default_cache_root() -> Path:
    """``$SKINATTN_CACHE_DIR``, else ``~/.cache/skinattn``."""
    return Path(os.environ.get("SKINATTN_CACHE_DIR") or Path.home() / ".cache" / "skinattn")


def resolve_pretrained(source: str | os.PathLike[str], cache_root: str | os.PathLike[str] | None = None) -> PretrainedWeights:
    """A local file (checked and hashed in place) or an ``s3://`` object (fetched into the cache)."""
    text = os.fspath(source)
    fmt = weights_format(text)
    if text.startswith(S3_SCHEME):
        path, digest = _fetch(text, Path(cache_root) if cache_root is not None else default_cache_root())
        return PretrainedWeights(text, path, digest, fmt)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ModelError(f"{path}: pretrained weights file not found")
    return PretrainedWeights(str(path.resolve()), path, sha256_file(path), fmt)


def _fetch(uri: str, cache_root: Path) -> tuple[Path, str]:
    """Stream ``uri`` into ``<cache_root>/pretrained/sha256/`` while hashing it; return (path, sha256)."""
    folder = cache_root / "pretrained" / "sha256"
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(uri.rsplit("/", 1)[-1]).suffix.lower()
    digest = hashlib.sha256()
    download = folder / f".download-{os.getpid()}{suffix}"
    try:
        with atomic_path(download) as tmp, open_stream(uri, max_bytes=max_fetch_bytes()) as stream:
            with open(tmp, "wb") as out:
                for chunk in iter(lambda: stream.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
    except DataError as exc:  # missing object, no access, over the budget: said with the URI
        raise ModelError(f"cannot fetch pretrained weights: {exc}") from exc
    target = folder / f"{digest.hexdigest()}{suffix}"
    # Same name, same bytes: a copy another run put there first is exactly this file.
    os.replace(download, target)
    return target, digest.hexdigest()
