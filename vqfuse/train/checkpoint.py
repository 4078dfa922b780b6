"""Training checkpoints: safetensors + JSON only (loading reads data and never runs code), swapped in atomically.

Layout of `run_dir/checkpoints/last/`:
    model.safetensors   generator (Tokenizer) state
    ema.safetensors     EMA generator state (when EMA is on)
    disc.safetensors    "discriminator.*" weights and "objective.*" state (when the GAN is on)
    optim.safetensors   optimizer tensors, keys "<name>.state.<param index>.<field>"
    optim.json          the rest of the optimizer state dicts (param groups, non-tensor state)
    rng.safetensors     torch CPU (and CUDA) RNG states, one row per process, uint8
    state.json          step, counters, schedulers, data position, python/numpy RNG states, configs;
                        written last, so a directory with state.json is complete

A checkpoint is written into `checkpoints/tmp-XXXX/`, then swapped in: `last` -> `prev`, `tmp` -> `last`,
`prev` removed. A run killed at any moment leaves `last` or `prev` complete; `latest_checkpoint` finds it.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from vqfuse.errors import InputFileError
from vqfuse.io.atomic import fsync_dir
from vqfuse.io.weights import load_json, load_weights, save_json, save_weights

FORMAT = "vqfuse-checkpoint/1"
STATE_FILE = "state.json"
LAST, PREV, TMP_PREFIX = "last", "prev", "tmp-"
WeightFiles = dict[str, dict[str, Tensor]]


# ---- optimizer state <-> tensors + JSON -------------------------------------------------------------


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}  # strict JSON has no inf/nan
    return value


def _from_json_value(key: str, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    if isinstance(value, list) and key != "params":
        return tuple(value)  # betas and friends are tuples in torch's optimizers
    return value


def flatten_optimizer_state(state_dict: Mapping[str, Any], prefix: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's `state_dict()` -> (tensors keyed "<prefix>.state.<i>.<field>", JSON-able rest)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, fields in state_dict["state"].items():
        for name, value in fields.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = _json_value(value)
    groups = [{k: _json_value(v) for k, v in group.items()} for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Inverse of `flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    head = f"{prefix}.state."
    for key, value in tensors.items():
        if key.startswith(head):
            index, name = key[len(head) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    for index, fields in meta["scalars"].items():
        for name, value in fields.items():
            state.setdefault(int(index), {})[name] = _from_json_value(name, value)
    groups = [{k: _from_json_value(k, v) for k, v in group.items()} for group in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# ---- RNG states ---------------------------------------------------------------------------------------


def rng_state() -> tuple[dict[str, Any], dict[str, Tensor]]:
    """This process's RNG states: (python + numpy as JSON, torch CPU [+ CUDA] as uint8 tensors)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    json_part = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {
            "name": name,
            "keys": keys.tolist(),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
    }
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return json_part, tensors


def set_rng_state(json_part: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> None:
    """Restore what `rng_state` returned."""
    py = json_part["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    npy = json_part["numpy"]
    np.random.set_state(
        (npy["name"], np.asarray(npy["keys"], dtype=np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    # clone: torch reads a row view of a (world, n) tensor from the start of its storage (and may crash)
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8).cpu().clone())
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"].to(torch.uint8).cpu().clone())


def pack_rng(json_part: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> Tensor:
    """RNG states -> one float64 vector (every value is an integer < 2**53 or a float), for gathering."""
    py, npy = json_part["python"], json_part["numpy"]
    gauss = py["gauss_next"]
    parts = [
        torch.tensor([py["version"], *py["state"], gauss is not None, gauss or 0.0], dtype=torch.float64),
        torch.tensor([*npy["keys"], npy["pos"], npy["has_gauss"], npy["cached_gaussian"]], dtype=torch.float64),
        tensors["torch_cpu"].to(torch.float64),
    ]
    if "cuda" in tensors:
        parts.append(tensors["cuda"].to(torch.float64))
    return torch.cat(parts)


def unpack_rng(vector: Tensor, like: Mapping[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Inverse of `pack_rng`; `like` gives the tensor lengths (this process's own `rng_state()[1]`)."""
    v = vector.double().cpu()
    n_py, n_np = 1 + 625 + 2, 624 + 3
    py, npy, rest = v[:n_py], v[n_py : n_py + n_np], v[n_py + n_np :]
    json_part = {
        "python": {
            "version": int(py[0]),
            "state": [int(t) for t in py[1:626]],
            "gauss_next": float(py[627]) if py[626] else None,
        },
        "numpy": {
            "name": "MT19937",
            "keys": [int(t) for t in npy[:624]],
            "pos": int(npy[624]),
            "has_gauss": int(npy[625]),
            "cached_gaussian": float(npy[626]),
        },
    }
    tensors, offset = {}, 0
    for key in ("torch_cpu", "cuda"):
        if key in like:
            n = like[key].numel()
            tensors[key] = rest[offset : offset + n].to(torch.uint8)
            offset += n
    return json_part, tensors


# ---- writing and finding checkpoints ----------------------------------------------------------------


def is_complete(path: Path) -> bool:
    """A checkpoint directory whose state.json (written last) exists and whose listed files all exist."""
    state_file = path / STATE_FILE
    if not state_file.is_file():
        return False
    try:
        state = load_json(state_file)
    except InputFileError:
        return False
    return all((path / name).is_file() for name in state.get("files", []))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """`root/last` if complete, else `root/prev` if complete (a swap was interrupted), else None."""
    root = Path(root)
    for name in (LAST, PREV):
        if is_complete(root / name):
            return root / name
    return None


def save_checkpoint(root: str | os.PathLike, weights: WeightFiles, json_files: Mapping[str, Any], state: dict) -> Path:
    """Write a complete checkpoint into `root/tmp-XXXX/` and swap it in as `root/last`.

    Args:
        root: the checkpoints directory (`run_dir/checkpoints`).
        weights: file name -> tensors, each written as safetensors.
        json_files: file name -> JSON document.
        state: the state.json document; its "files" entry is filled in here.
    If anything fails before the swap, the temporary directory is removed and `last` is untouched.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)  # left over by a killed run
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=root))
    try:
        for name, tensors in weights.items():
            save_weights(tensors, tmp / name, metadata={"format": FORMAT})
        for name, doc in json_files.items():
            save_json(doc, tmp / name)
        state = dict(state, format=FORMAT, files=sorted([*weights, *json_files]))
        save_json(state, tmp / STATE_FILE)  # last: marks the directory complete
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    last, prev = root / LAST, root / PREV
    if last.exists():
        if prev.exists():
            shutil.rmtree(prev)
        os.replace(last, prev)  # killed here: `prev` is complete, `last` missing
    os.replace(tmp, last)
    fsync_dir(root)
    shutil.rmtree(prev, ignore_errors=True)
    return last


def load_checkpoint(path: str | os.PathLike) -> tuple[WeightFiles, dict[str, Any], dict[str, Any]]:
    """(safetensors files by name, other JSON files by name, state.json) of a checkpoint directory."""
    path = Path(path)
    if not is_complete(path):
        raise InputFileError(path, "not a complete vqfuse checkpoint (state.json or a listed file is missing)")
    state = load_json(path / STATE_FILE)
    if state.get("format") != FORMAT:
        raise InputFileError(path / STATE_FILE, f"unsupported checkpoint format {state.get('format')!r}")
    weights: WeightFiles = {}
    docs: dict[str, Any] = {}
    for name in state["files"]:
        if name.endswith(".safetensors"):
            weights[name] = load_weights(path / name)
        elif name.endswith(".json"):
            docs[name] = load_json(path / name)
    return weights, docs, state


def load_optimizer_state(optimizer: Any, state_dict: dict[str, Any]) -> None:
    """Load state, but keep the hyper-parameters of the current config (lr, betas, weight decay...)."""
    current = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    optimizer.load_state_dict(state_dict)
    for group, hyper in zip(optimizer.param_groups, current):
        group.update(hyper)


def restore_scheduler(scheduler: Any, state: dict[str, Any]) -> None:
    """Set the step count and recompute the LR from the current schedule (closed form of LambdaLR)."""
    scheduler.last_epoch = int(state["last_epoch"])
    scheduler._step_count = int(state.get("_step_count", scheduler.last_epoch + 1))
    lrs = [base * lam(scheduler.last_epoch) for base, lam in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs


__all__ = [
    "load_optimizer_state",
    "restore_scheduler",
    "flatten_optimizer_state",
    "unflatten_optimizer_state",
    "rng_state",
    "set_rng_state",
    "pack_rng",
    "unpack_rng",
    "is_complete",
    "latest_checkpoint",
    "save_checkpoint",
    "load_checkpoint",
]
