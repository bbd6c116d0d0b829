"""Errors raised by the model registry; the CLI prints them as one line (they are SkinattnErrors)."""

from __future__ import annotations

from skinattn.errors import SkinattnError


class RegistryError(SkinattnError):
    """The registry cannot do what was asked; the message names the root, version or key and the reason."""


class ObjectNotFound(RegistryError):
    """A key that was expected in the registry's storage is not there."""
