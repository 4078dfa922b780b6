"""User-facing errors.

Everything raised as a :class:`VqfuseError` is a problem with the user's input, files or
configuration, not a bug: the CLI prints ``error: <message>`` on one line and exits non-zero
instead of showing a traceback.
"""

from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, os.PathLike]


def _one_line(text: object) -> str:
    """Collapse a message onto one line (the CLI prints errors as a single line)."""
    return " ".join(str(text).split())


class VqfuseError(Exception):
    """Base class for errors the CLI reports as ``error: <message>`` (no traceback)."""


class InputFileError(VqfuseError):
    """An input file is missing, unreadable or malformed; ``str()`` is ``"<path>: <problem>"``."""

    def __init__(self, path: PathLike, problem: str) -> None:
        super().__init__(os.fspath(path), _one_line(problem))
        self.path: str = os.fspath(path)
        self.problem: str = _one_line(problem)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class TokenFileError(InputFileError):
    """A ``.vqf`` token file is not one, is truncated, corrupt or of an unsupported version."""


class ModelMismatchError(VqfuseError):
    """Tokens, weights or a checkpoint belong to a different model than the one asked for."""


class ConfigError(VqfuseError):
    """A configuration file or option is invalid."""


__all__ = ["VqfuseError", "InputFileError", "TokenFileError", "ModelMismatchError", "ConfigError"]
