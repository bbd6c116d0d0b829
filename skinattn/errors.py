"""Errors that the CLI reports as one clear line instead of a traceback."""


class SkinattnError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class ModelError(SkinattnError):
    """A model cannot be built, saved or loaded (unknown arch, bad weights file, card mismatch)."""


class DataError(SkinattnError):
    """Input data is unusable; the message names the file or row and the reason."""
