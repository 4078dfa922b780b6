"""Keeping a whole fusion run (tokenizers, token encoding, prior) within its `steps=N` and `train.max_minutes`.

Two rules, both off for the presets' full runs:

- Items encoded: `prior.max_items` cuts each split to that many items, spread evenly (`encode_limit`). A
  `steps=N` override sets it to a quarter of the items the prior draws in N steps (N x batch_size / 4,
  `vqfuse.train.config.apply_steps_cap`): at steps=10 a smoke run encodes 80 items per split instead of
  thousands of video clips (a clip costs ~0.1-0.2 s to encode on one CPU thread). Presets leave it unset: a
  full run encodes everything.
- Time: `train.max_minutes` is the budget of the whole run (`RunBudget`). Each stage still to come gets an
  equal share of what is left (a tokenizer to train, the encoding, the prior; what a stage leaves unused goes to
  the next), passed down as that stage's `train.max_minutes`. Encoding measures one batch and encodes as many
  items as fit in its share (`fit_items`). Every stage still saves its model and metrics when it stops.

And the end-of-run samples cost at most a quarter of what the training did (`sample_plan`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
from torch.utils.data import Subset

from vqfuse.train.short_runs import spread_indices

MIN_TEST_ITEMS = 8  # a held-out split is never cut below this (or its size)
SAMPLE_SHARE = 0.25  # end-of-run samples cost at most this share of the training's prior passes


class RunBudget:
    """The wall-clock budget of one fusion run, from `train.max_minutes` (None: unbounded)."""

    def __init__(self, minutes: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.minutes, self.clock = minutes, clock
        self.start = clock()

    def remaining(self) -> float | None:
        """Minutes left (never below 0), or None without a budget."""
        if self.minutes is None:
            return None
        return max(0.0, float(self.minutes) - (self.clock() - self.start) / 60.0)

    def share(self, stages_left: int) -> float | None:
        """The next stage's minutes: an equal part of what is left over the stages still to come."""
        left = self.remaining()
        return None if left is None else left / max(1, int(stages_left))


def cap_minutes(own: float | None, budget: float | None) -> float | None:
    """A stage's `train.max_minutes`: its own limit or the run's share, whichever is smaller."""
    if budget is None:
        return own
    return budget if own is None else min(float(own), budget)


def encode_limit(n_items: int, max_items: int | None, floor: int) -> int:
    """Items of a split to encode: all `n_items`, or `max_items` (`prior.max_items`) when fewer, but at least
    `floor` (one batch of every process for training; `MIN_TEST_ITEMS` held out)."""
    if max_items is None:
        return int(n_items)
    return min(int(n_items), max(int(max_items), int(floor)))


class ItemSubset:
    """Items `indices` of a multimodal dataset with rows (`modalities`, `item_rows`, `item`), keeping what
    `encode_set` reads, so items shared between rows are still encoded once."""

    def __init__(self, dataset: Any, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.modalities = tuple(dataset.modalities)
        self.num_classes = getattr(dataset, "num_classes", None)
        labels = getattr(dataset, "labels", None)
        self.labels = [int(labels[i]) for i in self.indices] if labels is not None else None
        self.item_rows = [tuple(dataset.item_rows[i]) for i in self.indices]

    def item(self, modality: str, index: int) -> torch.Tensor:
        return self.dataset.item(modality, index)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.dataset[self.indices[i]]


def subset(dataset: Any, n: int) -> Any:
    """`dataset` itself when `n` covers it, else `n` of its items spread evenly (`ItemSubset` for a dataset with
    rows, else a plain `Subset`, whose items carry their labels)."""
    if n >= len(dataset):
        return dataset
    indices = spread_indices(len(dataset), n)
    if hasattr(dataset, "item_rows") and callable(getattr(dataset, "item", None)):
        return ItemSubset(dataset, indices)
    return Subset(dataset, indices)


def sample_plan(
    n: int, rerank: int, sampling: dict[str, Any], lengths: dict[str, int], kind: str, train_passes: int
) -> tuple[int, int]:
    """(items, candidates per item) of the end-of-run samples, so they cost at most `SAMPLE_SHARE` of the
    prior passes the training did (`train_passes`, about 3 per training sequence: forward and backward): as
    configured when that fits (every full preset run: under 4%), else without reranking and, if still too
    many, fewer items (at least one). At steps=10, 8 reranked samples of fusion-av-digits took ~2 minutes on a
    shared CPU, more than the whole rest of the run; now 3 samples without reranking.

    A MaskGIT generation costs its `steps` (x2 with classifier-free guidance), a causal one a pass per token."""
    names = list(lengths)
    cfg = 1 if sampling.get("cfg_scale") is None else 2

    def passes(r: int) -> int:
        each = sum(
            cfg * (int(sampling.get("steps") or 12) if kind == "maskgit" else lengths[to])
            for to in (names if len(names) > 1 else [])
        )
        joint = int(sampling.get("joint_steps") or 24) if kind == "maskgit" else sum(lengths.values())
        return max(1, r * (each + joint))

    n, rerank = max(0, int(n)), max(1, int(rerank or 1))
    budget = SAMPLE_SHARE * train_passes
    if n == 0 or n * passes(rerank) <= budget:
        return n, rerank
    return max(1, min(n, int(budget // passes(1)))), 1


def fit_items(
    n_items: int, floor: int, seconds: float | None, probe: Callable[[int], float], probe_items: int = 64
) -> int:
    """How many of `n_items` to encode within `seconds`: `probe(k)` encodes k items and returns its seconds;
    the rate it measures sets the count (never below `floor`). Without a budget, all of them."""
    if seconds is None or n_items <= floor:
        return n_items
    k = min(n_items, max(1, probe_items))
    spent = max(probe(k), 1e-6)
    fit = int(math.floor(max(0.0, seconds - spent) * k / spent))
    return max(min(floor, n_items), min(n_items, fit))


__all__ = [
    "RunBudget",
    "cap_minutes",
    "encode_limit",
    "ItemSubset",
    "subset",
    "fit_items",
    "sample_plan",
    "MIN_TEST_ITEMS",
]
