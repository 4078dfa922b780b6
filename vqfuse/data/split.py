"""Deterministic train/test splits by a stable hash of each item's key.

An item's side of the split depends only on its key (an emoji's codepoints, a file's relative path,
a photo's name), never on the other items, on their order or on the Python process: adding files
to a folder never moves an existing file between train and test. The hash is
:func:`vqfuse.data.cache.stable_hash`, the same in every process.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence, TypeVar

from vqfuse.data.cache import stable_hash
from vqfuse.errors import VqfuseError

T = TypeVar("T")

SPLITS = ("train", "test", "all")
DEFAULT_SALT = "vqfuse"


def heldout_score(key: str, salt: str = DEFAULT_SALT) -> float:
    """A uniform pseudo-random number in [0, 1) fixed by ``(salt, key)``."""
    return stable_hash(salt, key) / 2.0**64


def is_heldout(key: str, fraction: float = 0.1, salt: str = DEFAULT_SALT) -> bool:
    """Whether the item with this key belongs to the held-out (test) split."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction must be in [0, 1], got {fraction}")
    return heldout_score(key, salt) < fraction


def check_split(split: str) -> str:
    """Validate a split name ("train", "test" or "all")."""
    if split not in SPLITS:
        raise VqfuseError(f"unknown split '{split}'; choose train, test or all")
    return split


def split_items(
    items: Iterable[T],
    key_fn: Callable[[T], str],
    fraction: float = 0.1,
    salt: str = DEFAULT_SALT,
    min_heldout: int = 0,
) -> tuple[list[T], list[T]]:
    """Split ``items`` into ``(train, test)`` by :func:`is_heldout` on ``key_fn(item)``.

    Order within each part follows the input. ``min_heldout`` guards tiny collections (a couple of
    dozen photos): if the hash holds out fewer items, the lowest-scoring remaining ones are moved
    to test as well, while keeping at least one item in train.
    """
    items = list(items)
    scores = [heldout_score(key_fn(it), salt) for it in items]
    test_idx = {i for i, s in enumerate(scores) if s < fraction}
    want = min(min_heldout, len(items) - 1)
    if len(test_idx) < want:
        rest = sorted((s, i) for i, s in enumerate(scores) if i not in test_idx)
        test_idx.update(i for _, i in rest[: want - len(test_idx)])
    train = [it for i, it in enumerate(items) if i not in test_idx]
    test = [it for i, it in enumerate(items) if i in test_idx]
    return train, test


def select_split(
    items: Sequence[T],
    key_fn: Callable[[T], str],
    split: str,
    fraction: float = 0.1,
    salt: str = DEFAULT_SALT,
    min_heldout: int = 0,
) -> list[T]:
    """The items of one split: ``"train"``, ``"test"`` or ``"all"``."""
    check_split(split)
    if split == "all":
        return list(items)
    train, test = split_items(items, key_fn, fraction, salt, min_heldout)
    return train if split == "train" else test


__all__ = ["SPLITS", "heldout_score", "is_heldout", "check_split", "split_items", "select_split"]
