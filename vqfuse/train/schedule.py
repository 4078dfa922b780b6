"""Learning-rate schedule: linear warm-up, then cosine decay to `min_lr_ratio` of the base rate.

The multiplier is a pure function of the optimiser step, so a resumed run that restores the step count
continues on exactly the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> float:
    """LR multiplier at optimiser step `step` (0-based).

    warm-up:  (step + 1) / warmup_steps for step < warmup_steps (so the very first update is not at lr 0);
    then:     min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cos(pi * t)), t = (step - warmup) / (total - warmup),
              clamped to t <= 1 (steps past `total_steps` stay at min_lr_ratio).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - max(warmup_steps, 0)
    if decay_steps <= 0:
        return 1.0
    t = min(1.0, max(0.0, (step - max(warmup_steps, 0)) / decay_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass
class WarmupCosine:
    """The LambdaLR multiplier as an object of plain numbers, so the scheduler's `state_dict()` is JSON."""

    warmup_steps: int
    total_steps: int
    min_lr_ratio: float = 0.1

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)


def build_scheduler(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.1) -> LambdaLR:
    """A LambdaLR following `warmup_cosine`; call `.step()` once per training step."""
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    return LambdaLR(optimizer, WarmupCosine(int(warmup_steps), int(total_steps), float(min_lr_ratio)))


__all__ = ["warmup_cosine", "WarmupCosine", "build_scheduler"]
