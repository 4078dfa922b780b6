"""Crash-safe file primitives.

Writes go to a temporary file in the target's directory, are fsynced, then ``os.replace``-d onto
the target, so a killed process leaves either the old file or the new one, never half of one.
Reads turn OS errors into :class:`~vqfuse.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from vqfuse.errors import InputFileError, PathLike

T = TypeVar("T")


def _current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(target: Path) -> int:
    """Keep an existing file's permissions; otherwise what a plain ``open(..., "w")`` would give."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_current_umask()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make the rename durable (best effort; not supported everywhere)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on normal exit fsync it and move it onto ``path``.

    Missing parent directories are created. If the body raises, the temp file is removed and
    any existing file at ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _final_mode(target))
        _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(target.parent)


def atomic_write(path: PathLike, write_fn: Callable[[Path], T]) -> T:
    """Call ``write_fn(tmp_path)`` and atomically move the result onto ``path``; return its result."""
    with atomic_path(path) as tmp:
        return write_fn(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> None:
    """Atomically replace ``path`` with ``text``."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> None:
    """Atomically write ``obj`` as strict JSON (no NaN/Infinity) with a trailing newline.

    Serialisation happens before anything touches the disk, so a non-serialisable ``obj``
    raises ``TypeError``/``ValueError`` without creating or changing ``path``.
    """
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def describe_os_error(exc: OSError, path: PathLike) -> str:
    """A short, one-line reason for an OS error on ``path``."""
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, IsADirectoryError) or Path(path).is_dir():
        return "is a directory, expected a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read ({exc.strerror or exc})"


def read_input_bytes(path: PathLike, error: type[InputFileError] = InputFileError) -> bytes:
    """Read a whole input file, turning OS errors into ``error(path, reason)``."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise error(path, describe_os_error(exc, path)) from None


__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "describe_os_error",
    "read_input_bytes",
]
