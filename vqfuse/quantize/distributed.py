"""Keeps codebook state identical across processes: sums are all-reduced, decisions are broadcast."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(t: Tensor) -> Tensor:
    """In-place sum over processes (no-op on one process)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """In-place copy of rank `src`'s tensor to every process (no-op on one process)."""
    if is_distributed():
        dist.broadcast(t, src=src)
    return t


def broadcast_int(value: int, device: torch.device, src: int = 0) -> int:
    """The same integer on every process: rank `src`'s."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.broadcast(t, src=src)
    return int(t.item())
