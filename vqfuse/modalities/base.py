"""A modality owns everything kind-specific: datasets, file I/O, sample previews, quality metrics.

The trainer, the CLI and the evaluator only talk to this interface, so audio and video plug in by
registering another `Modality`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from torch import Tensor
from torch.utils.data import Dataset


class Modality(ABC):
    name: str
    dims: int  # spatial dims of one item: 1 audio, 2 image, 3 video
    extensions: tuple[str, ...]  # file suffixes the CLI reads, lower case with dot

    @abstractmethod
    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        """Items are float tensors (C, *spatial) in [-1, 1]. `data` is the run config's data section."""

    @abstractmethod
    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        """Facts stored with the model (image size, sample rate ...)."""

    @abstractmethod
    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """One file -> (C, *spatial) in [-1, 1]; raises InputFileError naming the file."""

    @abstractmethod
    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        """(C, *spatial) in [-1, 1] -> one file, written atomically."""

    @abstractmethod
    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        """A preview a person can look at or listen to (input | reconstruction); returns files written."""

    @abstractmethod
    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        """Quality of a batch of reconstructions (B, C, *spatial), averaged per item."""

    def default_output_suffix(self) -> str:
        return self.extensions[0]


_MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> None:
    _MODALITIES[modality.name] = modality


def get_modality(name: str) -> Modality:
    from vqfuse.errors import ConfigError

    if name not in _MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; known: {', '.join(sorted(_MODALITIES))}")
    return _MODALITIES[name]
