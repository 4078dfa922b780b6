"""Exponential moving average of a model's parameters (buffers such as EMA codebooks are copied).

    decay_n = min(decay, (1 + n) / (10 + n))          n = number of updates so far
    ema     = decay_n * ema + (1 - decay_n) * param

The warm-up term keeps the first few hundred updates from being dominated by the random initial
weights (with a fixed 0.999, 5% of the initialisation would still be in the average after 3,000 steps).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn


def ema_decay(decay: float, updates: int, warmup: bool = True) -> float:
    """Effective decay of update number `updates` (0-based)."""
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


class EMA:
    """A frozen copy of `model` whose parameters track the live ones.

    Args:
        model: the live (unwrapped) model; the copy lives on the same device, in eval mode.
        decay: the target decay, e.g. 0.999.
        warmup: use the (1 + n) / (10 + n) warm-up of the decay.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.updates = float(decay), warmup, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step of every floating-point parameter; buffers are copied as they are."""
        d = ema_decay(self.decay, self.updates, self.warmup)
        ema_params = dict(self.model.named_parameters())
        for name, p in model.named_parameters():
            e = ema_params[name]
            if e.dtype.is_floating_point:
                e.lerp_(p.detach().to(e.dtype), 1.0 - d)  # e = d * e + (1 - d) * p
            else:
                e.copy_(p)
        self.copy_buffers(model)
        self.updates += 1

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        ema_buffers = dict(self.model.named_buffers())
        for name, b in model.named_buffers():
            if name in ema_buffers:
                ema_buffers[name].copy_(b)

    def state_dict(self) -> dict[str, Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Tensor], updates: int) -> None:
        self.model.load_state_dict(state)
        self.updates = int(updates)


__all__ = ["EMA", "ema_decay"]
