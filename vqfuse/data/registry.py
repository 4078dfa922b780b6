"""Dataset specs -> datasets, through a small registry per modality.

A spec is ``NAME`` or ``NAME:ARG`` (``emoji``, ``digits``, ``photos``, ``folder:PATH``). Every
source registers itself when its module is imported, the built-in ones included (``vqfuse.data``
imports them all, in the order their specs are listed), and other modules add their own datasets
the same way without touching this file::

    from vqfuse.data.registry import register_dataset
    register_dataset("audio", "speech", lambda arg, **kw: SpeechDataset(**kw))

and build them with ``make_dataset("audio", "speech", sample_rate=16000, split="train")``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch.utils.data import Dataset

from vqfuse.errors import VqfuseError

# factory(arg, **options) -> Dataset; ``arg`` is the text after "NAME:" (None when absent)
Factory = Callable[..., Dataset]


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset: its factory and whether its spec takes an argument (``NAME:ARG``)."""

    name: str
    factory: Factory
    arg: Optional[str] = None  # placeholder shown in help/errors, e.g. "PATH"; None: takes no argument
    help: str = ""

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name


_REGISTRY: dict[str, dict[str, DatasetEntry]] = {}


def register_dataset(
    modality: str, name: str, factory: Factory, arg: Optional[str] = None, help: str = "", replace: bool = False
) -> None:
    """Register ``factory(arg, **options)`` under ``modality`` ("image", "audio", "paired", ...) as ``name``.

    ``arg`` names the spec's argument (e.g. ``"PATH"`` for ``folder:PATH``); leave it None for
    datasets that take none.
    """
    name = name.lower()
    table = _REGISTRY.setdefault(modality, {})
    if name in table and not replace and table[name].factory is not factory:
        raise ValueError(f"{modality} dataset '{name}' is already registered")
    table[name] = DatasetEntry(name, factory, arg, help)


def dataset_entries(modality: str) -> list[DatasetEntry]:
    """Registered datasets of one modality, in registration order."""
    return list(_REGISTRY.get(modality, {}).values())


def _choices(modality: str) -> str:
    usages = [e.usage for e in dataset_entries(modality)]
    if len(usages) <= 1:
        return "".join(usages) or "(none registered)"
    return ", ".join(usages[:-1]) + " or " + usages[-1]


def parse_spec(modality: str, spec: str) -> tuple[DatasetEntry, Optional[str]]:
    """``"folder:/data/x"`` -> (the ``folder`` entry, ``"/data/x"``); raises VqfuseError if unknown."""
    spec = spec.strip()
    name, sep, arg = spec.partition(":")
    entry = _REGISTRY.get(modality, {}).get(name.strip().lower())
    if entry is None:
        hint = ""
        if os.path.isdir(spec) and "folder" in _REGISTRY.get(modality, {}):
            hint = f" (to use the folder, write folder:{spec})"
        raise VqfuseError(f"unknown dataset '{spec}'; choose {_choices(modality)}{hint}")
    if entry.arg and not arg:
        raise VqfuseError(f"dataset '{entry.name}' needs an argument: {entry.usage}")
    if not entry.arg and sep:
        raise VqfuseError(f"dataset '{entry.name}' takes no argument; write just '{entry.name}'")
    return entry, (arg if entry.arg else None)


def make_dataset(modality: str, spec: str, **options: Any) -> Dataset:
    """Build the dataset named by ``spec`` for ``modality``, passing ``options`` to its factory."""
    entry, arg = parse_spec(modality, spec)
    return entry.factory(arg, **options)


def image_dataset(spec: str, size: int, split: str = "train") -> Dataset:
    """An image dataset from a spec: ``emoji``, ``digits``, ``photos`` or ``folder:PATH``.

    Items are ``(3, size, size)`` float tensors in [-1, 1].
    """
    return make_dataset("image", spec, size=size, split=split)


__all__ = ["DatasetEntry", "register_dataset", "dataset_entries", "parse_spec", "make_dataset", "image_dataset"]
