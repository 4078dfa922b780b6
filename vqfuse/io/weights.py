"""Model weights as safetensors and small JSON documents, saved atomically.

Loading never unpickles anything (no ``torch.load``): a weights file cannot run code.
Every problem with an input file is an :class:`~vqfuse.errors.InputFileError` naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.atomic import atomic_path, atomic_write_json, describe_os_error, read_input_bytes

_SAFETENSORS_PREFIX = "Error while deserializing header:"


def _storage_key(t: Tensor) -> tuple[int, str] | None:
    """Identify a tensor's underlying storage (``None`` for empty tensors, which share nothing)."""
    if t.numel() == 0:
        return None
    return t.untyped_storage().data_ptr(), str(t.device)


def _prepare_tensors(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detach, move to CPU, make contiguous, and clone tensors whose storage is already taken.

    safetensors refuses tensors that share memory (tied weights, views of one buffer); giving
    each its own copy stores them independently.
    """
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, str]] = set()
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"state_dict keys must be str, got {type(name).__name__}: {name!r}")
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(value).__name__}, not a tensor")
        t = value.detach()
        key = _storage_key(t)
        if key is not None and key in seen:
            t = t.clone()
        elif key is not None:
            seen.add(key)
        out[name] = t.cpu().contiguous()
    return out


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise TypeError(f"weights metadata must map str to str; offending entries: {bad!r}")
    return dict(metadata)


def save_weights(state_dict: Mapping[str, Tensor], path: PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Atomically save tensors (e.g. ``model.state_dict()``) as a safetensors file."""
    tensors = _prepare_tensors(state_dict)
    meta = _check_metadata(metadata)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=meta)


def _weights_error(path: PathLike, exc: Exception) -> InputFileError:
    if isinstance(exc, OSError):
        return InputFileError(path, describe_os_error(exc, path))
    reason = str(exc).strip()
    if reason.startswith(_SAFETENSORS_PREFIX):
        reason = reason[len(_SAFETENSORS_PREFIX) :].strip()
    return InputFileError(path, f"not a valid safetensors weights file (truncated or corrupt: {reason})")


def load_weights(path: PathLike, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Load every tensor from a safetensors file onto ``device``."""
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _weights_error(path, exc) from None


def load_weights_metadata(path: PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors file's header (``{}`` if none)."""
    try:
        with safe_open(path, framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise _weights_error(path, exc) from None


def save_json(obj: Any, path: PathLike, indent: int | None = 2) -> None:
    """Atomically write ``obj`` as strict JSON (NaN/Infinity rejected) with a trailing newline."""
    atomic_write_json(path, obj, indent=indent)


def load_json(path: PathLike) -> Any:
    """Parse a UTF-8 JSON file; invalid content raises InputFileError with line and column."""
    data = read_input_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(path, f"not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise InputFileError(path, "invalid JSON: nested too deeply") from None


__all__ = [
    "save_weights",
    "load_weights",
    "load_weights_metadata",
    "save_json",
    "load_json",
    "to_jsonable",
    "load_state_into",
]


def to_jsonable(v: Any) -> Any:
    """Strict-JSON form, recursively: tuples -> lists, tensors and numpy scalars -> numbers, non-finite floats
    -> None, paths -> str, dict keys -> str."""
    if isinstance(v, Mapping):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x) for x in v]
    if isinstance(v, Tensor):
        return to_jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return to_jsonable(v.item())
    return v


def load_state_into(model: torch.nn.Module, path: PathLike, device: str | torch.device = "cpu") -> None:
    """Load a safetensors state dict into `model`; a shape or key mismatch is an InputFileError naming `path`."""
    state = load_weights(path, device=str(device))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputFileError(path, f"weights do not match the config: {first}") from exc
