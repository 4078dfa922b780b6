"""One modality's dataset seen as a multimodal one, so that a token prior can be trained over a single
modality (frame prediction, unconditional clips, repair of one kind of data) through the fusion pipeline.

Items are ``{name: (C, *item), "label": -1}``; ``limit`` caps the items (a generated-on-the-fly training
set such as moving digits is otherwise as long as its epoch, and every item is encoded to tokens once).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from vqfuse.errors import VqfuseError


def _tensor(item: Any) -> torch.Tensor:
    if isinstance(item, dict):
        item = next(v for v in item.values() if isinstance(v, torch.Tensor))
    elif isinstance(item, (tuple, list)):
        item = item[0]
    return item


class SingleModalityDataset(Dataset):
    """`dataset`'s items under the name `name`, without labels."""

    num_classes = None

    def __init__(self, name: str, dataset: Dataset, limit: int | None = None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise VqfuseError(f"items must be an integer >= 1, got {limit!r}")
        self.modalities = (name,)
        self.dataset = dataset
        self.n = len(dataset) if limit is None else min(int(limit), len(dataset))  # type: ignore[arg-type]
        if self.n == 0:
            raise VqfuseError(f"the {name} dataset is empty")
        self.labels = [-1] * self.n

    @property
    def item_rows(self) -> list[tuple[int]]:
        return [(i,) for i in range(self.n)]

    def item(self, modality: str, index: int) -> torch.Tensor:
        return _tensor(self.dataset[index])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        return {self.modalities[0]: self.item(self.modalities[0], i % self.n), "label": -1}


def single_modality_dataset(name: str, spec: str, split: str, options: dict[str, Any]) -> SingleModalityDataset:
    """Modality `name`'s dataset `spec` (its data options in `options`, plus ``items``: a cap)."""
    from vqfuse.modalities import get_modality

    options = dict(options)
    limit = options.pop("items", None)
    dataset = get_modality(name).dataset(spec, split, {**options, "train": spec})
    return SingleModalityDataset(name, dataset, limit)


__all__ = ["SingleModalityDataset", "single_modality_dataset"]
