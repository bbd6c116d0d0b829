"""Strict reader for the ``KEY=VALUE`` files under ``infra/`` (``image.env``, ``cluster.env``).

The same files are read by shell (``infra/check.sh``), by kustomize users and by the pipelines, so the
format is the common subset: one ``KEY=VALUE`` per line, ``#`` comment lines, blank lines, no quoting, no
spaces around ``=``, no duplicate keys. Anything else is an error naming the file and line, never silently
skipped. Standard library only: the offline checks import this from the tool virtual environment, where the
project is not installed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# Repository root: components/ is a top-level folder, so the files are found relative to this module and
# not to the current working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent
INFRA_DIR = REPO_ROOT / "infra"

_KEY = re.compile(r"[A-Z][A-Z0-9_]*")


class ConventionFileError(ValueError):
    """An ``infra/*.env`` file is missing, malformed, or lacks a key that the code needs."""


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``path`` into an ordered ``{key: value}`` dict, rejecting anything outside the format."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConventionFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        where = f"{path}:{number}"
        if not sep:
            raise ConventionFileError(f"{where}: expected KEY=VALUE, got {raw!r}")
        if not _KEY.fullmatch(key):
            raise ConventionFileError(f"{where}: key {key!r} must be upper case letters, digits and '_'")
        if not value or value != value.strip() or any(c in value for c in "\"' "):
            raise ConventionFileError(f"{where}: value of {key} must be non-empty, unquoted, without spaces")
        if key in values:
            raise ConventionFileError(f"{where}: duplicate key {key}")
        values[key] = value
    return values


def setting(defaults_file: Path, key: str) -> str:
    """Value of ``key``: the environment variable of that name when set and non-empty, else the file's."""
    override = os.environ.get(key, "").strip()
    if override:
        return override
    values = read_env_file(defaults_file)
    if key not in values:
        raise ConventionFileError(f"{defaults_file}: missing key {key}")
    return values[key]


def setting_list(defaults_file: Path, key: str) -> tuple[str, ...]:
    """A comma-separated setting as a tuple, refusing empty items (a trailing comma is a typo)."""
    items = tuple(item.strip() for item in setting(defaults_file, key).split(","))
    if not all(items):
        raise ConventionFileError(f"{key}: empty item in comma-separated list {','.join(items)!r}")
    return items
