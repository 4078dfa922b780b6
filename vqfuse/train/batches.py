"""Resumable data order for the trainers: a permutation per epoch fixed by (seed, epoch), and endless
batches whose position is part of a checkpoint, so a resumed run sees exactly the data it would have."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from vqfuse.errors import VqfuseError


class ResumableSampler(Sampler[int]):
    """A fresh permutation of range(n) per epoch, fixed by (seed, epoch), started at `offset` items in.

    The trainer sets `epoch` / `offset` before each pass, so the data order is a function of the seed and
    the number of items consumed, and a resumed run continues exactly where the checkpoint left off.
    (No `generator` or `set_epoch` attributes: accelerate must not re-seed or re-number it.)
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.epoch, self.offset = 0, 0

    def permutation(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
        return torch.randperm(self.n, generator=g)  # (n,)

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation(self.epoch)[self.offset :].tolist())

    def __len__(self) -> int:
        return max(self.n - self.offset, 0)


class InfiniteBatches:
    """Endless batches from a (prepared) DataLoader over a `ResumableSampler`, with a resumable position.

    Args:
        loader: DataLoader (possibly wrapped by accelerate) whose sampler is `sampler`.
        sampler: the ResumableSampler.
        generator: the DataLoader's generator, re-seeded per epoch (worker seeds).
        global_batch: items consumed per step over all processes.
    """

    def __init__(
        self, loader: DataLoader, sampler: ResumableSampler, generator: torch.Generator, global_batch: int
    ) -> None:
        self.loader, self.sampler, self.generator = loader, sampler, generator
        self.global_batch = global_batch
        self.epoch, self.position = 0, 0  # position: items of this epoch consumed (all processes)
        self._it: Iterator | None = None

    def __iter__(self) -> "InfiniteBatches":
        return self

    def __next__(self) -> Any:
        for _ in range(3):  # at most: rest of an exhausted epoch, then a fresh one
            if self._it is None:
                self.sampler.epoch, self.sampler.offset = self.epoch, self.position
                self.generator.manual_seed((self.sampler.seed * 7_919 + self.epoch) % 2**63)
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                self._it, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            self.position += self.global_batch
            return batch
        raise VqfuseError("the training data loader yields no batches")

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._it = int(state["epoch"]), int(state["position"]), None


def first_tensor(sample: Any) -> Tensor:
    """A dataset item, or the first element of an (item, label) pair."""
    return sample[0] if isinstance(sample, (list, tuple)) else sample


__all__ = ["ResumableSampler", "InfiniteBatches", "first_tensor"]
