"""The base of the paired image + audio datasets, and what they share (clip length, pairing, factory)."""

from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from vqfuse.data.audio import check_sample_rate, check_segment_seconds, segment_samples
from vqfuse.errors import VqfuseError

MODALITY = "paired"


def clip_length(segment_seconds: float | None, sample_rate: int) -> int | None:
    """Samples per audio clip (None: whole clips), after checking both arguments."""
    check_segment_seconds(segment_seconds)
    check_sample_rate(sample_rate)
    return segment_samples(segment_seconds, sample_rate)


def check_pairings(pairings: int) -> int:
    """``pairings`` if it is an integer >= 1, else a :class:`VqfuseError`."""
    if not isinstance(pairings, int) or pairings < 1:
        raise VqfuseError(f"pairings must be an integer >= 1, got {pairings!r}")
    return pairings


def choose(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """``k`` indices from ``range(n)``: distinct when ``k <= n``, else with repeats."""
    return [int(c) for c in rng.choice(n, size=k, replace=k > n)]


class PairedDataset(Dataset):
    """Base of the paired datasets: item ``i`` joins image ``pairs[i][0]`` with audio ``pairs[i][1]``.

    Subclasses fill ``pairs``, ``labels`` (one int per item, -1 for none), ``num_classes`` (None where
    labels are not classes) and implement :meth:`image` and :meth:`audio`.
    """

    split: str
    size: int
    sample_rate: int
    segment_length: int | None
    pairs: list[tuple[int, int]]
    labels: list[int]
    num_classes: int | None

    def image(self, j: int) -> torch.Tensor:
        """Image ``j``: ``(3, S, S)`` float32 in [-1, 1]."""
        raise NotImplementedError

    def audio(self, k: int) -> torch.Tensor:
        """Audio clip ``k``: ``(1, L)`` float32 in [-1, 1]."""
        raise NotImplementedError

    modalities = ("image", "audio")

    @property
    def item_rows(self) -> list[tuple[int, int]]:
        """One index per modality for each item (``encode_set`` encodes each distinct one once)."""
        return self.pairs

    def item(self, modality: str, index: int) -> torch.Tensor:
        """Item ``index`` of ``modality`` (an entry of ``modalities``)."""
        return getattr(self, modality)(index)

    def describe(self, i: int) -> dict[str, Any]:
        """Metadata of item ``i`` (what the image is, who says what): for inspection and tests."""
        j, k = self.pairs[i]
        return {"image_index": j, "audio_index": k, "label": self.labels[i]}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        j, k = self.pairs[i]
        return {"image": self.image(j), "audio": self.audio(k), "label": self.labels[i]}

    @property
    def num_images(self) -> int:
        """Distinct images used by the pairs."""
        return len({j for j, _ in self.pairs})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, n={len(self)}, images={self.num_images}, "
            f"size={self.size}, sample_rate={self.sample_rate}, segment_length={self.segment_length})"
        )


def paired_factory(cls: type, takes_path: bool = False) -> Callable[..., PairedDataset]:
    """A registry factory that rejects options ``cls`` does not take with a one-line error."""
    params = [p for p in inspect.signature(cls).parameters if p != "path"]

    def build(arg: str | None, **options: Any) -> PairedDataset:
        unknown = sorted(set(options) - set(params))
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise VqfuseError(f"{cls.__name__} has no option {names}; options: {', '.join(params)}")
        return cls(arg, **options) if takes_path else cls(**options)

    return build


__all__ = ["MODALITY", "PairedDataset", "clip_length", "check_pairings", "choose", "paired_factory"]
