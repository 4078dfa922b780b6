"""Rules that keep a short run sound and bounded: `steps=10` (a smoke test) or a `train.max_minutes` stop.

A preset's schedule is written for its full length. At a few steps most of it is harmless (a GAN that starts
at step 600 never starts; a 500-step LR warm-up stays in its warm-up; samples and checkpoints come at the end),
but two things are not:

- `train.quantizer_bypass_steps` longer than the run would save a tokenizer whose codebooks were never
  initialised or trained, so the bypass ends by half of the run: `bypass_steps`.
- The end-of-run held-out evaluation covers the whole test split (2,000 clips for moving digits: many
  minutes on a CPU after a 10-step run), so it scores at most as many items as the run trained on
  (steps x batch size, at least one batch): `heldout_limit`. No full preset run is affected: each trains
  on far more items than its test split holds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from vqfuse.train.config import TrainConfig


def bypass_steps(tc: TrainConfig) -> int:
    """Steps the residual VQ is bypassed: `train.quantizer_bypass_steps`, but at most half of `train.steps`, so
    the quantizer is initialised and trained in every run (at steps=10: 5 bypassed, then k-means, then 5)."""
    return max(0, min(int(tc.quantizer_bypass_steps), int(tc.steps) // 2))


def heldout_limit(n_items: int, steps_done: int, batch_size: int) -> int:
    """Held-out items a run of `steps_done` steps evaluates: all `n_items`, or as many as it trained on
    (steps x batch size, at least one batch) when that is fewer."""
    return max(0, min(int(n_items), max(1, int(steps_done)) * max(1, int(batch_size))))


def spread_indices(n_total: int, n: int) -> list[int]:
    """`n` indices spread evenly over `range(n_total)` (first and last included): a fixed, label-balanced
    subset of an ordered split, without drawing from any random stream."""
    n = max(0, min(int(n), int(n_total)))
    if n >= n_total:
        return list(range(n_total))
    if n == 1:
        return [0]
    return sorted({int(i) for i in torch.linspace(0, n_total - 1, n).round().long().tolist()})


def limit_heldout(dataset: Dataset, steps_done: int, batch_size: int) -> Dataset:
    """`dataset` itself, or an evenly spread subset of `heldout_limit` items."""
    n_total = len(dataset)  # type: ignore[arg-type]
    n = heldout_limit(n_total, steps_done, batch_size)
    return dataset if n >= n_total else Subset(dataset, spread_indices(n_total, n))


@torch.no_grad()
def initialize_if_bypassed(model: Any, ema: Any, tc: TrainConfig, batches: Any) -> bool:
    """A run stopped (train.max_minutes) while its quantizer was still bypassed: k-means-initialise the
    quantizer on `train.quantizer_init_batches` batches from `batches()` before the model is saved, so its
    codes describe the data; the EMA copy takes the same quantizer. Returns whether it did."""
    q = getattr(model, "quantizer", None)
    if tc.quantizer_bypass_steps <= 0 or not hasattr(q, "initialize") or q.initialized:
        return False
    z = torch.cat([model.encoder(batches()) for _ in range(max(1, tc.quantizer_init_batches))])
    q.initialize(z)
    if ema is not None:
        ema.model.quantizer.load_state_dict(q.state_dict())
    return True


__all__ = ["bypass_steps", "heldout_limit", "spread_indices", "limit_heldout", "initialize_if_bypassed"]
