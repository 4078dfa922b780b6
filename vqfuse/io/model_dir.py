"""One way to save and load every model directory (tokenizers, priors, judges): ``config.json`` + weights.

A directory holds ``config.json`` (a ``format`` tag such as ``vqfuse-tokenizer/1``, the architecture, and
``model_id``: a content hash of the weights) and ``model.safetensors``. Each file is written atomically, so
an interrupted save leaves the previous directory readable; loading reads JSON and tensors only, nothing is
unpickled, and every problem is an :class:`~vqfuse.errors.InputFileError` naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor, nn

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.weights import load_json, load_state_into, save_json, save_weights

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
M = TypeVar("M", bound=nn.Module)


def weights_fingerprint(state: dict[str, Tensor]) -> str:
    """A short content hash of the weights: token files record it so that decoding with another model
    is caught."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return h.hexdigest()[:16]


def save_model_dir(directory: PathLike, module: nn.Module, config: dict[str, Any], fmt: str) -> str:
    """Writes ``module``'s weights and ``config`` (with ``format`` and ``model_id`` added) into
    ``directory``; returns the model id."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = module.state_dict()
    save_weights(state, directory / WEIGHTS_FILE, metadata={"format": fmt})
    model_id = weights_fingerprint(state)
    save_json({"format": fmt, **config, "model_id": model_id}, directory / CONFIG_FILE)
    return model_id


def read_model_config(directory: PathLike, fmt: str, what: str) -> dict[str, Any]:
    """``config.json`` of a directory written by :func:`save_model_dir` with format ``fmt``."""
    path = Path(directory) / CONFIG_FILE
    raw = load_json(path)
    if not isinstance(raw, dict) or raw.get("format") != fmt:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise InputFileError(path, f"not a vqfuse {what} config (format {found!r})")
    return raw


def load_model_dir(
    directory: PathLike, fmt: str, what: str, build: Callable[[dict[str, Any]], M], device: str | torch.device = "cpu"
) -> tuple[M, dict[str, Any]]:
    """Reads the config, builds the module with ``build(config)`` (a KeyError, TypeError or ValueError
    there means an invalid config), loads the weights; returns (module in eval mode on ``device``, config)."""
    directory = Path(directory)
    raw = read_model_config(directory, fmt, what)
    try:
        module = build(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(directory / CONFIG_FILE, f"invalid {what} config: {exc}") from exc
    load_state_into(module, directory / WEIGHTS_FILE, device)
    return module.to(device).eval(), raw


__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "weights_fingerprint",
    "save_model_dir",
    "read_model_config",
    "load_model_dir",
]
